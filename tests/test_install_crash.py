"""SIGKILL an installer at random moments: no corrupt model file is ever visible.

A child process installs and removes two models in a loop, each through a
different writer: ``tiny.en-q5_1`` downloaded (slowly) from a 127.0.0.1 server,
and ``tiny.en-q8_0`` quantized from the cached tiny.en. The parent kills it
with SIGKILL at a random time, many times, while a watcher thread keeps
validating whatever sits under the final names. After every kill, each final
file must be absent or byte-identical to the good one; the next child must
resume or clean up what the killed one left.
"""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

from whisperx_native.errors import ModelError
from whisperx_native.models import store
from whisperx_native.models.ggml_file import validate
from whisperx_native.models.quantize import quantize_model

from _model_server import ModelServer

MAX_KILLS = 60
MAX_SECONDS = 100.0


def _sha1(path) -> str:
    return hashlib.sha1(open(path, "rb").read()).hexdigest()


def test_sigkill_during_install_never_leaves_a_corrupt_model(tmp_path, tiny_en_ct2_dir):
    cache = tmp_path / "cache"
    store.install("tiny.en", cache=cache)  # the F16 source of the quantized one
    ref = tmp_path / "ref"
    ref.mkdir()
    good = {"tiny.en-q5_1": quantize_model(cache / "ggml-tiny.en.bin", ref / "q5_1.bin", "q5_1"),
            "tiny.en-q8_0": quantize_model(cache / "ggml-tiny.en.bin", ref / "q8_0.bin", "q8_0")}
    good_sha1 = {name: _sha1(p) for name, p in good.items()}
    finals = {name: cache / f"ggml-{name}.bin" for name in good}

    with ModelServer({"ggml-tiny.en-q5_1.bin": good["tiny.en-q5_1"].read_bytes()}) as server:
        child = textwrap.dedent(f"""
            from whisperx_native.models import store
            while True:
                for name in ("tiny.en-q5_1", "tiny.en-q8_0"):
                    store.install(name, cache={str(cache)!r}, base_url={server.url + "/slow"!r},
                                  offline=False, progress=False)
                    store.remove(name, cache={str(cache)!r})
        """)
        seen = {"checks": 0, "corrupt": []}
        stop = threading.Event()

        def watch() -> None:  # what a loading process would see at any moment
            while not stop.is_set():
                for name, path in finals.items():
                    try:
                        info = validate(path)
                    except ModelError as exc:
                        if path.exists() and "not found" not in str(exc):
                            seen["corrupt"].append((name, str(exc)))
                        continue
                    seen["checks"] += 1
                    if info.file_size != good[name].stat().st_size:
                        seen["corrupt"].append((name, f"size {info.file_size}"))
                time.sleep(0.002)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        rng = random.Random(1234)
        kills = left_temporaries = complete_after_kill = 0
        corrupt_after_kill = []
        t_end = time.monotonic() + MAX_SECONDS
        try:
            while kills < MAX_KILLS and time.monotonic() < t_end:
                proc = subprocess.Popen([sys.executable, "-c", child], cwd=tempfile.gettempdir(),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                time.sleep(rng.uniform(0.3, 2.5))  # import takes ~0.3 s; one cycle ~1-2 s
                if proc.poll() is not None:  # the loop never ends by itself: it failed
                    raise AssertionError(proc.stderr.read().decode()[-3000:])
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                proc.stderr.close()
                kills += 1
                left_temporaries += any(p.name.endswith((".tmp", ".part")) for p in cache.iterdir())
                for name, path in finals.items():
                    if path.exists():
                        complete_after_kill += 1
                        if _sha1(path) != good_sha1[name]:
                            corrupt_after_kill.append(name)
        finally:
            stop.set()
            watcher.join()
        resumed = sum(1 for mode, _, rng_header in server.requests("slow") if rng_header)

        # A last, undisturbed installer finishes both and clears the leftovers.
        for name in finals:
            res = store.install(name, cache=cache, base_url=server.url + "/slow", offline=False, progress=False)
            assert _sha1(res.path) == good_sha1[name]
        leftovers = [p.name for p in cache.iterdir() if p.name.endswith((".tmp", ".part"))]

    print(f"\nkills: {kills}; kills that left a temporary or partial file: {left_temporaries}; "
          f"final files present after a kill: {complete_after_kill}; downloads resumed with Range: {resumed}; "
          f"watcher validations of a visible file: {seen['checks']}; corrupt files visible: "
          f"{len(seen['corrupt']) + len(corrupt_after_kill)}")
    assert kills >= 20
    assert seen["corrupt"] == [] and corrupt_after_kill == []
    assert left_temporaries > 0 and seen["checks"] > 0  # kills did land mid-write, and files were seen
    assert leftovers == []
