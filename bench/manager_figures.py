"""Figures for WhisperManager: cold vs preloaded first call, switch time, idle RSS,
downgrade delay under real CPU load, throughput of 2 concurrent calls vs 1.

    python bench/manager_figures.py            # tiny.en + base from the models extra

Prints one JSON object (and writes bench/results/manager.json).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import whisperx_native as wn
from whisperx_native.manager import WhisperManager
from whisperx_native.manager.memory import process_rss
from whisperx_native.models.store import resolve_model_path

REPO = Path(__file__).resolve().parent.parent
JFK = wn.load_audio(REPO / "vendor" / "whisper.cpp" / "samples" / "jfk.wav")


def first_call(preload: bool, model: str) -> float:
    m = WhisperManager(model, idle_timeout=None, auto_downgrade=False, memory_budget=None)
    if preload:
        m.preload().result()
    t0 = time.perf_counter()
    m.transcribe(JFK, preset="fast")
    dt = time.perf_counter() - t0
    m.close()
    return dt


def switch_time(a: str, b: str) -> float:
    m = WhisperManager(a, idle_timeout=None, auto_downgrade=False, memory_budget=None)
    m.transcribe(JFK, preset="fast")
    t0 = time.perf_counter()
    m.switch_model(b)
    dt = time.perf_counter() - t0
    m.close()
    return dt


def idle_rss(model: str) -> dict:
    unloaded = threading.Event()
    m = WhisperManager(model, idle_timeout=0.2, auto_downgrade=False, memory_budget=None,
                       on_event=lambda e: e.kind == "unloaded" and unloaded.set())
    m.transcribe(JFK, preset="fast")
    loaded = process_rss()
    unloaded.wait(30)  # the event comes after the native free and malloc_trim
    out = {"loaded_mb": loaded / 1e6, "after_unload_mb": process_rss() / 1e6}
    m.close()
    return out


def downgrade_delay(big: str, small: str) -> float:
    events = []
    m = WhisperManager(big, idle_timeout=None, memory_budget=None, cpu_interval=0.5, cpu_window=10.0,
                       downgrade_chain=[big, small], on_event=events.append)
    m.transcribe(JFK, preset="fast", language="en")
    time.sleep(1.0)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    t0 = time.perf_counter()
    try:
        while not any(e.kind == "downgraded" for e in events):
            time.sleep(0.05)
        dt = time.perf_counter() - t0
    finally:
        for b in burners:
            b.kill()
    m.close()
    return dt


def throughput(model: str, n_calls: int = 6) -> dict:
    m = WhisperManager(model, idle_timeout=None, auto_downgrade=False, memory_budget=None, max_concurrent=2)
    m.transcribe(JFK, preset="fast", n_threads=1)
    t0 = time.perf_counter()
    for _ in range(n_calls):
        m.transcribe(JFK, preset="fast", n_threads=1)
    one = n_calls / (time.perf_counter() - t0)

    def worker():
        for _ in range(n_calls // 2):
            m.transcribe(JFK, preset="fast", n_threads=1)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    two = n_calls / (time.perf_counter() - t0)
    m.close()
    return {"calls_per_s_1": one, "calls_per_s_2_concurrent": two, "ratio": two / one}


def main() -> None:
    tiny, base = str(resolve_model_path("tiny.en")), str(resolve_model_path("base"))
    out = {
        "first_call_cold_s": first_call(False, base),
        "first_call_preloaded_s": first_call(True, base),
        "switch_tiny_to_base_s": switch_time(tiny, base),
        "idle_rss_base": idle_rss(base),
        "downgrade_after_real_load_s (window 10 s)": downgrade_delay(base, tiny),
        "throughput_tiny_jfk_1_thread_each": throughput(tiny),
    }
    print(json.dumps(out, indent=2))
    res = REPO / "bench" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "manager.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
