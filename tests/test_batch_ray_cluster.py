"""The Ray engine across two nodes: a ``ray.cluster_utils.Cluster`` of a head and a
worker node on this machine (1 CPU each), the driver attached by address."""

from __future__ import annotations

import json
import os

import pytest
import ray
from ray.cluster_utils import Cluster

import whisperx_native as wn
from whisperx_native.batch import transcribe_many
from _batch_audio import BROKEN, make_corpus
from test_batch import FAST, assert_same_as_reference

from _ray_util import _driver_outside_the_checkout  # noqa: F401,E402 - autouse, module scope



@pytest.fixture
def two_nodes():
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_two_nodes_one_actor_each_outputs_equal_single_file_transcripts(two_nodes, tiny_en_ggml, tmp_path):
    files = make_corpus(tmp_path / "in")
    with wn.Model(tiny_en_ggml, n_threads=1, adapt_threads=False) as m:
        reference = {stem: m.transcribe(str(p), **FAST) for stem, p in files.items() if stem != BROKEN}
    out = tmp_path / "out"
    # The driver connects by address, as `whisperx-native batch --address HOST:PORT` does.
    s = transcribe_many([tmp_path / "in"], out, engine="ray", address=two_nodes.address, formats=["txt", "json"],
                        model=tiny_en_ggml, write_on="workers", **FAST)
    assert (s["ray_cpus"], s["workers"], s["threads_per_worker"], s["actors"]) == (2, 2, 1, 2)
    assert s["nodes"] == 2                      # SPREAD: one actor on each node, both did work
    assert (s["done"], s["failed"]) == (5, 1)
    assert_same_as_reference(out, reference, ["txt", "json"])
    failure = json.loads((out / "failures.jsonl").read_text())
    assert (failure["path"], failure["attempts"]) == (str(files[BROKEN]), 2)
