"""Batch throughput: many files through ``whisperx_native.batch.transcribe_many``.

    python bench/batch_throughput.py [--rounds 3] [--short 12]

Audio: ``--short`` voice-memo-sized files (two espeak-ng sentences each, 10-18 s, four
voices: under one 30 s window) and one long file (bench/speech.py's >= 190 s of varied
speech with pauses and jfk), built once into the bench cache. Whole files are the unit
of work, so the long file bounds what workers can gain: the table's notes give that
bound, (all audio) / max(long file, all audio / workers). Every run transcribes all of them with tiny.en (F16), ``preset="fast"``
(greedy, no fallback), language en, JSON output, into a fresh output directory; wall
seconds are those of the batch summary (model loading included). Layouts:

* local 1 × 1, 2 × 1 (two states of one model, one thread each; the long file's chunks
  spread over both states), the same without that spreading (``chunk_workers=1``), and
  1 × 2 (one state, two threads);
* ray 2 × 1 on a local ``ray.init(num_cpus=2)`` started once before the rounds (its
  start-up time is reported on its own), as one actor with two states (the local layout:
  one copy of the weights, the long file spreads) and as two single-state actors; the
  wall includes creating the actors and loading the model in each;
* faster-whisper 1.2.1 ``BatchedInferencePipeline`` (int8, 2 threads, batch_size 8, its
  default VAD chunking, greedy), file after file, on the CTranslate2 weights our ggml
  file is converted from: a reference, not the same decoding.

The runs take turns round after round, each round starting one run later (the machine
is shared: turns spread the noise over all of them); the table shows each one's best
round and its median. Writes a
markdown table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import speech  # noqa: E402
from runners import CACHE, ct2_dir, model_path  # noqa: E402

OPTIONS = {"preset": "fast", "language": "en"}


def build_corpus(n_short: int) -> List[Path]:
    """``n_short`` short files and the long one, in ``CACHE/batch``."""
    root = CACHE / "batch"
    root.mkdir(parents=True, exist_ok=True)
    files = []
    paras = speech.PARAGRAPHS
    for i in range(n_short):
        wav = root / f"memo{i:02d}.wav"
        if not wav.exists():
            voice, speed = speech.VOICES[i % len(speech.VOICES)]
            tmp = root / f".memo{i:02d}.part.wav"
            speech._tts(f"{paras[2 * i % len(paras)]} {paras[(2 * i + 1) % len(paras)]}", voice, speed, tmp)
            tmp.replace(wav)
        files.append(wav)
    long_wav, _ = speech.build_long_speech(CACHE)
    dst = root / "long.wav"
    if not dst.exists():
        os.link(long_wav, dst) if hasattr(os, "link") else dst.write_bytes(long_wav.read_bytes())
    files.append(dst)
    return files


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def run_ours(files: List[Path], engine: str, workers: int, threads: int, model: Path,
             **extra) -> Dict[str, object]:
    from whisperx_native.batch import transcribe_many

    c0 = _cpu()
    with tempfile.TemporaryDirectory() as out:
        s = transcribe_many([str(f) for f in files], out, engine=engine, workers=workers, threads_per_worker=threads,
                            model=str(model), formats=["json"], **OPTIONS, **extra)
        assert s["done"] == len(files) and s["failed"] == 0, s
        texts = {Path(p).stem: json.loads(p.read_text())["text"] for p in Path(out).glob("*.json")
                 if p.name != "summary.json"}
    # The Ray actors' CPU time is in their own processes: not counted.
    cpu = _cpu() - c0 if engine == "local" else float("nan")
    return {"wall": s["wall_seconds"], "audio": s["audio_seconds"], "texts": texts, "cpu": cpu}


class FasterWhisperBatched:
    def __init__(self, threads: int = 2, batch_size: int = 8) -> None:
        self.threads, self.batch_size = threads, batch_size

    def __call__(self, files: List[Path]) -> Dict[str, object]:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        t0, c0 = time.perf_counter(), _cpu()
        model = WhisperModel(str(ct2_dir()), device="cpu", compute_type="int8", cpu_threads=self.threads)
        pipe = BatchedInferencePipeline(model)
        audio, texts = 0.0, {}
        for f in files:
            segments, info = pipe.transcribe(str(f), language="en", beam_size=1, best_of=1, temperature=0.0,
                                             condition_on_previous_text=False, batch_size=self.batch_size)
            texts[f.stem] = " ".join(s.text.strip() for s in segments)
            audio += info.duration
        wall = time.perf_counter() - t0
        del pipe, model
        return {"wall": wall, "audio": audio, "texts": texts, "cpu": _cpu() - c0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--short", type=int, default=12, help="number of short files (default 12)")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--no-faster-whisper", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    files = build_corpus(args.short)
    model = model_path()
    # key -> (engine column, layout column, run)
    runs: Dict[str, tuple] = {
        "1x1": ("local", "1 × 1", lambda: run_ours(files, "local", 1, 1, model)),
        "2x1": ("local", "2 × 1", lambda: run_ours(files, "local", 2, 1, model)),
    }
    from whisperx_native.batch.core import _has_option

    if _has_option("chunk_workers"):  # Model.transcribe's chunked long-form path
        runs["2x1-nospread"] = ("local, long file on one state", "2 × 1",
                                lambda: run_ours(files, "local", 2, 1, model, chunk_workers=1))
    runs["1x2"] = ("local", "1 × 2", lambda: run_ours(files, "local", 1, 2, model))
    ray_start = None
    if not args.no_ray:
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        runs["ray-1actor"] = ("ray, 1 actor × 2 states", "2 × 1",
                              lambda: run_ours(files, "ray", 2, 1, model, states_per_actor=2))
        runs["ray-2actors"] = ("ray, 2 actors × 1 state", "2 × 1", lambda: run_ours(files, "ray", 2, 1, model))
    if not args.no_faster_whisper:
        fw = FasterWhisperBatched(2)
        runs["fw"] = ("faster-whisper BatchedInferencePipeline int8", "1 × 2 (batch 8)", lambda: fw(files))

    results: Dict[str, List[Dict[str, object]]] = {k: [] for k in runs}
    loads = [os.getloadavg()[0]]
    try:
        keys = list(runs)
        for r in range(args.rounds):
            # Each round starts one run later: a burst of other work on the machine does not
            # always land on the same runs.
            for key in keys[r % len(keys):] + keys[:r % len(keys)]:
                engine, layout, fn = runs[key]
                res = fn()
                results[key].append(res)
                loads.append(os.getloadavg()[0])
                print(f"round {r + 1}: {engine} {layout}: {res['wall']:.2f} s", file=sys.stderr)
    finally:
        if ray_start is not None:
            import ray

            ray.shutdown()

    best = {k: min(v, key=lambda x: x["wall"]) for k, v in results.items()}
    median = {k: statistics.median(x["wall"] for x in v) for k, v in results.items()}
    base = best["1x1"]
    audio = base["audio"]
    import soundfile as sf

    secs = {f.stem: sf.info(str(f)).duration for f in files}
    short = [v for k, v in secs.items() if k != "long"]
    bound = audio / max(secs["long"], audio / 2)
    print(f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, {os.cpu_count()} "
          f"cores, shared with other work (load average {min(loads):.1f}-{max(loads):.1f} during the runs); tiny.en "
          f"F16, preset fast (greedy), language en, JSON output; {len(files)} files: {len(short)} short "
          f"({min(short):.0f}-{max(short):.0f} s, {sum(short):.0f} s) + 1 long ({secs['long']:.0f} s) = {audio:.0f} s "
          f"of audio; best of {args.rounds} interleaved rounds, median beside it. cpu s: this process's CPU time "
          f"(the Ray actors' is not in it).\n")
    print("| run | workers × threads | best wall s | median wall s | cpu s | × real time | vs local 1 × 1 "
          "| same text as local 1 × 1 |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for key, res in best.items():
        engine, layout, _ = runs[key]
        same = "yes" if res["texts"] == base["texts"] else \
            f"{sum(res['texts'].get(k) == v for k, v in base['texts'].items())}/{len(base['texts'])} files"
        cpu = "—" if res["cpu"] != res["cpu"] else f"{res['cpu']:.1f}"
        print(f"| {engine} | {layout} | {res['wall']:.2f} | {median[key]:.2f} | {cpu} | "
              f"{res['audio'] / res['wall']:.1f} | {base['wall'] / res['wall']:.2f} × | {same} |")
    print()
    b = {k: v["wall"] for k, v in best.items()}
    nospread = b.get("2x1-nospread", b["2x1"])
    print(f"- local 2 × 1 vs 1 × 1: **{b['1x1'] / b['2x1']:.2f} ×** (target ≥ 1.5 ×; "
          f"{b['1x1'] / nospread:.2f} × with the long file on one state, where whole files bound it to "
          f"{bound:.2f} × on this set); 2 × 1 vs 1 × 2: **{b['1x2'] / b['2x1']:.2f} ×**")
    if ray_start is not None:
        def overhead(key, ref, table):
            return (table[key] / table[ref] - 1) * 100

        print(f"- Ray engine vs local, same layout (2 × 1, one actor with two states vs local 2 × 1): "
              f"**{overhead('ray-1actor', '2x1', b):+.0f} %** (target ≤ 15 %; medians "
              f"{overhead('ray-1actor', '2x1', median):+.0f} %); two single-state actors vs local with the long "
              f"file on one state: {overhead('ray-2actors', 'nospread', dict(b, nospread=nospread)):+.0f} %; "
              f"starting the local Ray "
              f"instance, not counted: {ray_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
