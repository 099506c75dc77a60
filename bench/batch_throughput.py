"""Batch throughput: many files through ``whisperx_native.batch.transcribe_many``.

    python bench/batch_throughput.py [--rounds 2] [--short 12]

Audio: ``--short`` voice-memo-sized files (two espeak-ng sentences each, 10-18 s, four
voices: under one 30 s window) and one long file (bench/speech.py's >= 190 s of varied
speech with pauses and jfk), built once into the bench cache. Whole files are the unit
of work, so the long file bounds what workers can gain: the table's notes give that
bound, (all audio) / max(long file, all audio / workers). Every run transcribes all of them with tiny.en (F16), ``preset="fast"``
(greedy, no fallback), language en, JSON output, into a fresh output directory; wall
seconds are those of the batch summary (model loading included). Layouts:

* local 1 × 1, 2 × 1 (two states of one model, one thread each), 1 × 2 (one state, two threads);
* ray 2 × 1: the Ray engine on a local ``ray.init(num_cpus=2)`` started once before the
  rounds (its start-up time is reported on its own); the wall includes creating the two
  actors and loading the model in each;
* faster-whisper 1.2.1 ``BatchedInferencePipeline`` (int8, 2 threads, batch_size 8, its
  default VAD chunking, greedy), file after file, on the CTranslate2 weights our ggml
  file is converted from: a reference, not the same decoding.

The runs take turns round after round (the machine is shared: turns spread the noise
over all of them); the table shows each one's best round and its median. Writes a
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
from typing import Callable, Dict, List

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


def run_ours(files: List[Path], engine: str, workers: int, threads: int, model: Path) -> Dict[str, object]:
    from whisperx_native.batch import transcribe_many

    c0 = _cpu()
    with tempfile.TemporaryDirectory() as out:
        s = transcribe_many([str(f) for f in files], out, engine=engine, workers=workers, threads_per_worker=threads,
                            model=str(model), formats=["json"], **OPTIONS)
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
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--short", type=int, default=12, help="number of short files (default 12)")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--no-faster-whisper", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    files = build_corpus(args.short)
    model = model_path()
    runs: Dict[str, Callable[[], Dict[str, object]]] = {
        "local 1 × 1": lambda: run_ours(files, "local", 1, 1, model),
        "local 2 × 1": lambda: run_ours(files, "local", 2, 1, model),
        "local 1 × 2": lambda: run_ours(files, "local", 1, 2, model),
    }
    ray_start = None
    if not args.no_ray:
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        runs["ray 2 × 1"] = lambda: run_ours(files, "ray", 2, 1, model)
    if not args.no_faster_whisper:
        runs["faster-whisper batched int8, 2 threads"] = FasterWhisperBatched(2)

    results: Dict[str, List[Dict[str, object]]] = {k: [] for k in runs}
    loads = [os.getloadavg()[0]]
    try:
        for r in range(args.rounds):
            for name, fn in runs.items():
                res = fn() if not isinstance(fn, FasterWhisperBatched) else fn(files)
                results[name].append(res)
                loads.append(os.getloadavg()[0])
                print(f"round {r + 1}: {name}: {res['wall']:.2f} s", file=sys.stderr)
    finally:
        if ray_start is not None:
            import ray

            ray.shutdown()

    best = {k: min(v, key=lambda x: x["wall"]) for k, v in results.items()}
    median = {k: statistics.median(x["wall"] for x in v) for k, v in results.items()}
    base = best["local 1 × 1"]
    audio = base["audio"]
    cores = os.cpu_count()
    import soundfile as sf

    secs = {f.stem: sf.info(str(f)).duration for f in files}
    short = [v for k, v in secs.items() if k != "long"]
    bound = audio / max(secs["long"], audio / 2)
    print(f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, {cores} cores, "
          f"shared (load average {min(loads):.1f}-{max(loads):.1f} during the runs); tiny.en F16, preset fast (greedy), "
          f"language en, JSON output; {len(files)} files: {len(short)} short ({min(short):.0f}-{max(short):.0f} s, "
          f"{sum(short):.0f} s) + 1 long ({secs['long']:.0f} s) = {audio:.0f} s of audio; best of {args.rounds} "
          f"interleaved rounds, median beside it. cpu s: this process's CPU time (the Ray actors' is not in it).\n")
    print("| run | workers × threads | best wall s | median wall s | cpu s | × real time | vs local 1 × 1 | same text as local 1 × 1 |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for name, res in best.items():
        layout = name.split(" ", 1)[1] if name.startswith(("local", "ray")) else "1 × 2 (batch 8)"
        label = name.split(" ", 1)[0] if name.startswith(("local", "ray")) else "faster-whisper BatchedInferencePipeline int8"
        same = "yes" if res["texts"] == base["texts"] else \
            f"{sum(res['texts'].get(k) == v for k, v in base['texts'].items())}/{len(base['texts'])} files"
        cpu = "—" if res["cpu"] != res["cpu"] else f"{res['cpu']:.1f}"
        print(f"| {label} | {layout} | {res['wall']:.2f} | {median[name]:.2f} | {cpu} | {res['audio'] / res['wall']:.1f} | "
              f"{base['wall'] / res['wall']:.2f} × | {same} |")
    print()
    b = {k: v["wall"] for k, v in best.items()}
    print(f"- local 2 × 1 vs 1 × 1: **{b['local 1 × 1'] / b['local 2 × 1']:.2f} ×** (target ≥ 1.5 ×); "
          f"vs 1 × 2: **{b['local 1 × 2'] / b['local 2 × 1']:.2f} ×**; whole-file bound for 2 workers on this "
          f"set: {bound:.2f} ×")
    if "ray 2 × 1" in b:
        print(f"- Ray engine overhead vs local, same layout (2 × 1): **{(b['ray 2 × 1'] / b['local 2 × 1'] - 1) * 100:+.0f} %** "
              f"(target ≤ 15 %; median {(median['ray 2 × 1'] / median['local 2 × 1'] - 1) * 100:+.0f} %); "
              f"starting the local Ray instance, not counted: {ray_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
