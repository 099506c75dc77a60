"""Real-time streaming numbers: latency to final / first partial, stream RTF, WER, ring buffer.

    python bench/streaming_latency.py                      # jfk + the 2-minute file, real-time pace
    python bench/streaming_latency.py --fast               # as fast as possible (CI-sized)
    python bench/streaming_latency.py --model path/to/ggml-tiny.en.bin --threads 2
    python bench/streaming_latency.py --min-silence-long 0  # without adaptive endpointing

A simulated capture thread plays each file into a ring buffer in 50 ms blocks at
real-time pace; the streaming transcriber (Silero VAD, tiny.en; greedy partials, finals by
the file decoder: beam 5 with fallback, each hearing the committed utterances before it, their
text the decoder's prefix) runs in
this thread, with its default endpointing (500 ms pause, adaptive down to
``--min-silence-long`` ms for utterances past 8 s, forced cut at
``--max-utterance`` s). Per spoken phrase (tests/data/long_speech.json; jfk's
phrases come from the VAD) it measures:

* to final: from the moment the phrase's last sample was pushed to the moment the
  last final covering it was emitted;
* to first partial: from the phrase's first pushed sample to the first event
  (partial or final) covering it.

Also: the stream's real-time factor (whisper busy time / audio time), WER of the
final text and of the offline transcript against the reference, the number of
utterances and of forced cuts inside speech (at ``--max-utterance``), worst push
time (the consumer is busy transcribing meanwhile), overflow counts. Results go to
bench/results/streaming.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import threading
import time
from pathlib import Path

import jiwer
import numpy as np

import whisperx_native as wn
from whisperx_native.realtime import FINAL, PARTIAL, RingBuffer, SimulatedCapture, StreamingTranscriber
from whisperx_native.vad import load_vad

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from speech import normalize  # noqa: E402
DATA = REPO / "tests" / "data"
JFK_WAV = REPO / "vendor" / "whisper.cpp" / "samples" / "jfk.wav"
JFK_TEXT = ("And so my fellow Americans ask not what your country can do for you, "
            "ask what you can do for your country.")
SR = 16000


def pct(values, q):
    return round(float(np.percentile(values, q)), 3) if values else None


def phrases_of(name, audio):
    if name == "jfk":
        ctx, _ = load_vad()
        with ctx:
            return [{"start": a, "end": b} for a, b in ctx.segments(audio, min_silence_ms=300)]
    return json.loads((DATA / "long_speech.json").read_text())["phrases"]


def run_stream(model, name, audio, ref, realtime, block_s, max_utterance_s, min_silence_long_ms=200):
    ring = RingBuffer(30.0)
    cap = SimulatedCapture(audio, ring, realtime=realtime, block_s=block_s)
    tr = StreamingTranscriber(model, ring, clock=time.perf_counter, max_utterance_s=max_utterance_s,
                              min_silence_long_ms=min_silence_long_ms or None,
                              latency_budget_s=1.5 if realtime else None)
    cap.start()
    t0 = time.perf_counter()
    events = tr.run()
    wall = time.perf_counter() - t0
    cap.join()

    to_final, to_partial = [], []
    for ph in phrases_of(name, audio):
        covering = [e for e in events if e.kind in (FINAL, PARTIAL) and e.start < ph["end"] and e.end > ph["start"]]
        finals = [e.wall_time for e in covering if e.kind == FINAL]
        end_pushed = cap.pushed_at(int(ph["end"] * SR) - 1)
        start_pushed = cap.pushed_at(int(ph["start"] * SR))
        if finals and end_pushed is not None:
            to_final.append(max(finals) - end_pushed)
        if covering and start_pushed is not None:
            to_partial.append(min(e.wall_time for e in covering) - start_pushed)
    offline = model.transcribe(audio, language="en")  # the default decoder: what finals are held to
    return {
        "file": name,
        "audio_s": round(audio.size / SR, 2),
        "mode": "real-time" if realtime else "fast", "max_utterance_s": max_utterance_s,
        "min_silence_long_ms": min_silence_long_ms or None,
        "phrases": len(to_final),
        "utterances": len({e.utterance for e in tr.finals}),
        "forced_cuts": sum("cut_at" in e.detail for e in tr.finals),
        "to_final_p50_s": pct(to_final, 50), "to_final_p95_s": pct(to_final, 95),
        "to_final_max_s": round(max(to_final), 3) if to_final else None,
        "to_first_partial_p50_s": pct(to_partial, 50), "to_first_partial_p95_s": pct(to_partial, 95),
        "stream_rtf": round(tr.stats["busy_s"] / tr.stats["audio_s"], 3),
        "wall_s": round(wall, 2),
        "transcriptions": tr.stats["transcriptions"], "partial_runs": tr.stats["partials"],
        "wer_stream": round(jiwer.wer(normalize(ref), normalize(tr.text)), 4),
        "wer_offline": round(jiwer.wer(normalize(ref), normalize(offline.text)), 4),
        "wer_stream_vs_offline": round(jiwer.wer(normalize(offline.text), normalize(tr.text)), 4),
        "worst_behind_s": round(tr.governor.worst_behind_s, 3), "economy_level": tr.level,
        "max_push_ms": round(ring.max_push_s * 1000, 3), "overflows": ring.overflows,
        "dropped_samples": ring.dropped,
    }


def ring_stress(seconds=3.0):
    """Push times (50 ms blocks, 48 kHz stereo int16) against a consumer spinning in pure Python.

    push() takes no lock, but in CPython it needs the GIL: a consumer that never
    releases it delays the producer by up to the switch interval (5 ms). In a real
    stream the consumer spends its time in whisper with the GIL released."""
    ring = RingBuffer(2.0, input_rate=48000, input_channels=2)
    block = (np.random.default_rng(0).standard_normal((2400, 2)) * 3000).astype(np.int16)
    stop = threading.Event()

    def consume():
        while not stop.is_set():
            ring.read(int(np.random.randint(1, 8000)))
            sum(range(2000))  # busy, holding the GIL like a Python consumer does

    t = threading.Thread(target=consume)
    t.start()
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        ring.push(block)
        times.append(time.perf_counter() - t0)
    stop.set()
    t.join()
    return {"pushes": len(times), "push_p50_ms": round(float(np.median(times)) * 1000, 4),
            "push_p99_ms": round(float(np.percentile(times, 99)) * 1000, 4),
            "push_max_ms": round(max(times) * 1000, 3), "overflows": ring.overflows,
            "dropped_samples": ring.dropped}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny.en", help="model name or ggml path (default tiny.en)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fast", action="store_true", help="feed as fast as possible instead of real time")
    ap.add_argument("--block", type=float, default=0.05, help="capture block, seconds")
    ap.add_argument("--max-utterance", type=float, default=20.0,
                    help="longest utterance before a forced cut, seconds (the latency bound in pauseless speech)")
    ap.add_argument("--min-silence-long", type=int, default=200,
                    help="pause (ms) that ends an utterance past 8 s: adaptive endpointing (0: off, always 500 ms)")
    ap.add_argument("--out", default=str(HERE / "results" / "streaming.json"))
    args = ap.parse_args(argv)

    files = [("jfk", wn.load_audio(JFK_WAV), JFK_TEXT),
             ("long_speech", wn.load_audio(DATA / "long_speech.ogg"), (DATA / "long_speech.txt").read_text())]
    rows = []
    with wn.Model(args.model, n_threads=args.threads) as model:
        for name, audio, ref in files:
            row = run_stream(model, name, audio, ref, not args.fast, args.block, args.max_utterance,
                             args.min_silence_long)
            rows.append(row)
            print(json.dumps(row), flush=True)
    stress = ring_stress()
    print(json.dumps({"ring_stress": stress}))
    report = {"model": args.model, "threads": args.threads, "machine": platform.platform(),
              "python": sys.version.split()[0], "streams": rows, "ring_stress": stress,
              "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
