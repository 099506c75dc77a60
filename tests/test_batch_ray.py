"""Batch transcription on a real local Ray cluster (``ray.init(num_cpus=2)``, one per
module): the Ray engine's outputs equal one-file-at-a-time transcripts, failures are
retried once then recorded, resume skips, Ctrl-C of a driver attached with
``--address`` leaves no partial output, and the Ray Data adapter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import ray
import soxr

import whisperx_native as wn
from whisperx_native.batch import BatchError, RayTranscriber, transcribe_many
from _batch_audio import BROKEN, copies, make_corpus
from _util import default_sigint
from test_batch import FAST, FORMATS, assert_same_as_reference, check_interrupted_run, wait_for

from _ray_util import _driver_outside_the_checkout  # noqa: F401,E402 - autouse, module scope



@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray instance with 2 CPUs; its GCS address (for drivers in other processes)."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return root, make_corpus(root)


@pytest.fixture(scope="module")
def reference(tiny_en_ggml, corpus):
    _, files = corpus
    with wn.Model(tiny_en_ggml, n_threads=1, adapt_threads=False) as m:
        return {stem: m.transcribe(str(p), **FAST) for stem, p in files.items() if stem != BROKEN}


def test_ray_engine_equals_single_file_transcripts_retries_failures_and_resumes(ray_cluster, tiny_en_ggml, corpus,
                                                                                  reference, tmp_path):
    root, files = corpus
    out = tmp_path / "out"
    kw = dict(engine="ray", formats=FORMATS, model=tiny_en_ggml, workers=2, threads_per_worker=1, **FAST)
    s = transcribe_many([root], out, **kw)
    assert (s["files"], s["done"], s["skipped"], s["failed"]) == (6, 5, 0, 1)
    assert (s["actors"], s["states_per_actor"], s["nodes"], s["write_on"]) == (2, 1, 1, "driver")
    assert_same_as_reference(out, reference)
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [(f["path"], f["error_type"], f["attempts"]) for f in failures] == [(str(files[BROKEN]), "AudioError", 2)]

    s = transcribe_many([root], out, **kw)
    assert (s["done"], s["skipped"], s["failed"]) == (0, 5, 1)


def test_ray_actor_with_two_states_writing_on_the_workers(ray_cluster, tiny_en_ggml, corpus, reference, tmp_path,
                                                          monkeypatch):
    root, files = corpus
    good = [p for stem, p in files.items() if stem != BROKEN]
    # Paths relative to the driver's working directory, which is not the actors'.
    monkeypatch.chdir(root.parent)
    s = transcribe_many([root.name], "out", engine="ray", formats=["txt", "json"], model=tiny_en_ggml, workers=2,
                        threads_per_worker=1, states_per_actor=2, write_on="workers", **FAST)
    assert (s["done"], s["failed"], s["actors"], s["states_per_actor"]) == (len(good), 1, 1, 2)
    out = root.parent / "out"
    assert_same_as_reference(out, reference, ["txt", "json"])
    assert json.loads((out / "b/jfk.json").read_text())["source"] == os.path.join(root.name, "b", "jfk.wav")


def test_ctrl_c_of_a_driver_attached_by_address(ray_cluster, tiny_en_ggml, corpus, tmp_path):
    _, files = corpus
    src = copies([files[s] for s in ("a/one", "b/jfk", "four")], tmp_path / "many", 30)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "whisperx_native.batch", tmp_path / "many", "-o", out, "-f", ",".join(FORMATS),
            "-m", tiny_en_ggml, "--preset", "fast", "-l", "en", "--address", ray_cluster, "-w", 2, "-t", 1, "-q"]
    proc = subprocess.Popen(list(map(str, args)), cwd=tempfile.gettempdir(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        assert wait_for(lambda: out.exists() and any(out.glob("*.txt")), 180, proc), proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    s = check_interrupted_run(out, len(src))
    assert s["engine"] == "ray"


def test_ray_data_adapter(ray_cluster, tiny_en_ggml, corpus, reference):
    import ray.data

    _, files = corpus
    ray.data.DataContext.get_current().enable_progress_bars = False
    stems = ["a/one", "b/jfk", "four", BROKEN]
    ds = ray.data.from_items([{"path": str(files[s]), "id": i} for i, s in enumerate(stems)])
    kwargs = {"model": str(tiny_en_ggml), "n_threads": 1, **FAST}
    rows = ds.map_batches(RayTranscriber, fn_constructor_kwargs=kwargs, concurrency=2, batch_size=2,
                          num_cpus=1).take_all()
    rows.sort(key=lambda r: r["id"])
    assert [r["path"] for r in rows] == [str(files[s]) for s in stems]
    for r, stem in zip(rows[:3], stems):
        want = reference[stem]
        assert r["error"] == "" and r["text"] == want.text and r["language"] == "en"
        segs = json.loads(r["segments"])
        assert [(s["start"], s["end"], s["text"]) for s in segs] == [(s.start, s.end, s.text) for s in want.segments]
        assert r["audio_seconds"] == pytest.approx(want.timings["audio_seconds"])
    assert rows[3]["error"].startswith("AudioError:") and rows[3]["text"] == ""

    # Rows of samples at their own rate: resampled to 16 kHz like a file.
    samples = wn.load_audio(files["b/jfk"])
    at8k = soxr.resample(samples, 16000, 8000).astype(np.float32)
    ds = ray.data.from_items([{"audio": samples, "sample_rate": 16000}, {"audio": at8k, "sample_rate": 8000}])
    rows = ds.map_batches(RayTranscriber, fn_constructor_kwargs={**kwargs, "n_states": 2}, concurrency=1,
                          batch_size=2, num_cpus=2).take_all()
    assert rows[0]["text"] == reference["b/jfk"].text
    assert "audio" not in rows[0] and rows[1]["error"] == "" and "country" in rows[1]["text"]


def test_more_workers_than_cpus_and_a_model_no_worker_can_load(ray_cluster, tiny_en_ggml, corpus, reference,
                                                                tmp_path):
    root, _ = corpus
    # 3 single-CPU actors on 2 CPUs: the third never starts, and no file waits for it.
    s = transcribe_many([root], tmp_path / "out", engine="ray", formats=["txt"], model=tiny_en_ggml, workers=3,
                        threads_per_worker=1, **FAST)
    assert (s["done"], s["failed"], s["actors"]) == (5, 1, 3)
    assert_same_as_reference(tmp_path / "out", reference, ["txt"])
    # A model that cannot load stops the batch with its reason, not 6 failures.
    with pytest.raises(BatchError, match="no Ray worker.*not-a-model"):
        transcribe_many([root], tmp_path / "out2", engine="ray", model=str(tmp_path / "not-a-model.bin"),
                        workers=2, threads_per_worker=1, **FAST)
    assert not (tmp_path / "out2" / "failures.jsonl").read_text()
