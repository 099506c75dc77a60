"""Fuzzing every entry point: no input may crash, hang or exhaust the process (issue 18).

The cases live in ``_fuzz_cases.py`` (mutated whisper and Silero model files, mutated
audio files and special files, option values, API misuse, ring buffer, manager, cancel
races). Each category runs in a supervised worker process under an address-space
limit; the parent fails the test on

* **crash**: the worker died by a signal (SIGSEGV, SIGABRT ...) — the case in flight
  is named by the worker's last "start" line and run again alone to confirm;
* **hang**: no word from the worker within ``PER_CASE_S`` (the case in flight is named);
* **runaway**: a MemoryError under the limit;
* **foreign**: an exception that is not a ``WhisperError``;
* **wrong**: a case's own check failed (a cancel leaking into the next call).

Seeds are fixed: a case is generated from its id (``options-0042``) alone.

* default: ``COUNTS`` cases per category (a few hundred in all, CI time);
* ``WHISPERX_NATIVE_FUZZ=long``: ten times as many; ``WHISPERX_NATIVE_FUZZ=N``: N per category;
  ``WHISPERX_NATIVE_FUZZ_START=K``: ids from K on (inputs the default run never tried);
* ``WHISPERX_NATIVE_FUZZ_IDS=model-0017,audio-0003``: only those cases (reproduction);
  ``python tests/_fuzz_cases.py model-0017`` runs one in-process, with its traceback.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from _fuzz_cases import CATEGORIES, MARK
from _util import JFK_WAV
from whisperx_native.vad import default_vad_model

HERE = Path(__file__).resolve().parent
#: Default cases per category: the cheap ones get more.
COUNTS = {"model": 40, "vad": 50, "audio": 110, "options": 90, "api": 40, "ring": 40, "manager": 20, "cancel": 6}
PER_CASE_S = float(os.environ.get("WHISPERX_NATIVE_FUZZ_TIMEOUT", "60"))
FAILURES = ("crash", "hang", "runaway", "foreign", "wrong")


def _ids(category: str) -> list:
    only = os.environ.get("WHISPERX_NATIVE_FUZZ_IDS")
    if only:
        return [i for i in only.split(",") if i.rsplit("-", 1)[0] == category]
    mode = os.environ.get("WHISPERX_NATIVE_FUZZ", "")
    n = COUNTS[category]
    if mode == "long":
        n *= 10
    elif mode.isdigit():
        n = int(mode)
    start = int(os.environ.get("WHISPERX_NATIVE_FUZZ_START", "0"))  # new inputs: ids from here on
    return [f"{category}-{i:04d}" for i in range(start, start + n)]


def _worker(cfg: dict) -> "tuple[subprocess.Popen, queue.Queue]":
    proc = subprocess.Popen([sys.executable, str(HERE / "_fuzz_cases.py"), "--worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=str(HERE),
                            env={**os.environ, "PYTHONPATH": str(HERE)}, start_new_session=True)
    proc.stdin.write(json.dumps(cfg) + "\n")
    proc.stdin.close()
    lines: queue.Queue = queue.Queue()

    def pump():
        for line in proc.stdout:
            if line.startswith(MARK):
                lines.put(json.loads(line[len(MARK):]))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def run_cases(ids: list, base_cfg: dict, confirm: bool = True) -> list:
    """Run ``ids`` in as few worker processes as possible; one result dict per case."""
    results, todo = [], list(ids)
    while todo:
        proc, lines = _worker({**base_cfg, "ids": todo})
        in_flight, finished = None, False
        while True:
            try:
                msg = lines.get(timeout=PER_CASE_S)
            except queue.Empty:
                _kill(proc)
                results.append({"id": in_flight or todo[0], "outcome": "hang",
                                "msg": f"no answer within {PER_CASE_S:.0f} s"})
                break
            if msg is None:  # the worker's output ended: it exited or died
                proc.wait()
                if in_flight is None and not finished:  # died outside any case: blame the next one
                    in_flight = next((i for i in todo if i not in {r["id"] for r in results}), None)
                if in_flight is not None:
                    rc = proc.returncode
                    how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}"
                    res = {"id": in_flight, "outcome": "crash", "msg": f"worker died ({how})"}
                    if confirm:  # alone, in a fresh process: does it die again?
                        again = run_cases([in_flight], base_cfg, confirm=False)[0]
                        res["alone"] = again["outcome"]
                    results.append(res)
                break
            if "start" in msg:
                in_flight = msg["start"]
            elif "done" in msg:
                finished = True
            else:
                results.append(msg)
                in_flight = None
        if finished:
            proc.wait()
            break
        done = {r["id"] for r in results}
        todo = [i for i in todo if i not in done]
    return results


@pytest.fixture(scope="module")
def fuzz_cfg(tiny_en_ggml) -> dict:
    return {"model": str(tiny_en_ggml), "vad": str(default_vad_model()), "jfk": str(JFK_WAV)}


@pytest.mark.parametrize("category", CATEGORIES)
def test_fuzz(category, fuzz_cfg):
    ids = _ids(category)
    if not ids:
        pytest.skip("no case of this category selected")
    t0 = time.monotonic()
    results = run_cases(ids, fuzz_cfg)
    counts = Counter(r["outcome"] for r in results)
    print(f"\nfuzz {category}: {len(results)} cases in {time.monotonic() - t0:.1f} s: {dict(counts)}")
    bad = [r for r in results if r["outcome"] in FAILURES]
    for r in bad:
        print(f"  {r['id']}: {r['outcome']} {r.get('type', '')}: {r.get('msg', '')} [{r.get('what', '')}]"
              + (f" (alone: {r['alone']})" if "alone" in r else ""))
        if r.get("tb"):
            print("    " + r["tb"].replace("\n", "\n    "))
    assert len(results) == len(ids), "some cases gave no result"
    assert not bad, (f"{len(bad)} of {len(results)} {category} cases failed: "
                     + ", ".join(f"{r['id']} ({r['outcome']})" for r in bad[:20])
                     + "; reproduce with WHISPERX_NATIVE_FUZZ_IDS=<ids> or python tests/_fuzz_cases.py <id>")
