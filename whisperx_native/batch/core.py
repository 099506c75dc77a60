"""What both engines share: the job's settings, one file's work, the output and
failure files, and the running summary."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Sequence

from .._fsutil import atomic_write

__all__ = ["Job", "Outcome", "FileWorker", "Tally", "deferred_interrupt", "write_texts"]

SUMMARY_NAME = "summary.json"
FAILURES_NAME = "failures.jsonl"


@dataclass
class Job:
    """Everything a worker needs to transcribe one file like every other."""

    model: str
    n_threads: int = 1
    formats: Sequence[str] = ("txt",)
    preset: Optional[str] = None
    options: Dict[str, object] = field(default_factory=dict)

    def transcribe_kwargs(self) -> Dict[str, object]:
        return {"preset": self.preset, **self.options}


@dataclass
class Outcome:
    """What became of one file: ``status`` is ``"done"``, ``"failed"`` or ``"cancelled"``.
    ``texts`` (format → rendered output) when the driver writes the outputs."""

    path: str
    status: str
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    error_type: str = ""
    message: str = ""
    fatal: bool = False            # a usage problem (bad option): every file would fail the same way
    texts: Optional[Dict[str, str]] = None
    node: str = ""
    attempts: int = 1


def write_texts(paths: Sequence[Path], texts: Sequence[str]) -> None:
    """Write each text to its path, all-or-nothing per file (temporary sibling, fsync, rename),
    and, in the main thread, all-or-nothing per input: a Ctrl-C meanwhile is raised after the
    last file is in place (an input never has some of its formats written and not others)."""
    with deferred_interrupt():
        for path, text in zip(paths, texts):
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path, overwrite=True) as f:
                f.write(text.encode("utf-8"))


_deferring: list = []


@contextlib.contextmanager
def deferred_interrupt():
    """Hold SIGINT (and SIGTERM, where it is turned into KeyboardInterrupt) until the block ends;
    then raise KeyboardInterrupt if one came. A no-op outside the main thread, where signals
    never arrive anyway."""
    if threading.current_thread() is not threading.main_thread() or _deferring:
        yield  # another thread, or inside an outer block that holds the signals already
        return
    caught = []
    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if sig == signal.SIGTERM and handler in (signal.SIG_DFL, signal.SIG_IGN, None):
            continue  # SIGTERM kills as usual unless someone turned it into an interrupt
        old[sig] = handler
        signal.signal(sig, lambda signum, frame: caught.append(signum))
    _deferring.append(True)
    try:
        yield
    finally:
        _deferring.pop()
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if caught:
        raise KeyboardInterrupt


#: Audio longer than one window goes through Model.transcribe's chunked long-form path.
LONG_SECONDS = 30.0


def _has_option(name: str) -> bool:
    import dataclasses

    from ..options import DecodeOptions

    return name in {f.name for f in dataclasses.fields(DecodeOptions)}


class FileWorker:
    """One loaded model and the work on one file: decode, transcribe, render, write.

    Used by the local engine's threads (one FileWorker, ``n_states`` concurrent calls on
    the model's states) and inside each Ray actor."""

    def __init__(self, job: Job, n_states: int = 1) -> None:
        from ..model import Model

        self.job = job
        self.n_states = max(1, n_states)
        self.model = Model(job.model, n_threads=job.n_threads, adapt_threads=False, max_idle_states=self.n_states)
        self.stopping = threading.Event()
        # Long files: Model.transcribe cuts audio longer than a window into chunks at pauses and
        # can run them on several states at once (``chunk_workers``). One long file at a time
        # gets all of this worker's states for its chunks, so a batch does not end on one long
        # file crawling along on one state while the others sit idle: the other files share
        # the cores with it meanwhile (single-threaded states take turns, they never spin).
        # Chunks are transcribed independently, so the transcript is the same either way.
        self._can_spread = (self.n_states > 1 and "chunk_workers" not in job.options
                            and job.options.get("vad") is not False and _has_option("chunk_workers"))
        self._spread_lock = threading.Lock()
        self._spreading = False

    def process(self, path: str, outputs: Optional[Sequence[str]], source: Optional[str] = None) -> Outcome:
        """Transcribe ``path``; write its outputs to ``outputs`` (one path per format), or,
        with ``outputs=None``, return the rendered texts in the Outcome. ``source``: the
        input as the user named it (recorded in JSON output and the Outcome; default ``path``)."""
        source = path if source is None else source
        outcome = self._process(path, outputs, source)
        outcome.path = source
        return outcome

    def _process(self, path: str, outputs: Optional[Sequence[str]], source: str) -> Outcome:
        from ..errors import AudioError, Cancelled, ModelError
        from ..output import render

        t0 = time.perf_counter()
        if self.stopping.is_set():
            return Outcome(path, "cancelled")
        audio_s = 0.0
        try:
            from ..filestream import for_transcribe

            audio, audio_s = for_transcribe(path)  # a long file: its path, read block by block
            kwargs = self.job.transcribe_kwargs()
            spread = self._can_spread and audio_s > LONG_SECONDS and self._claim_spread()
            try:
                if spread:
                    kwargs["chunk_workers"] = self.n_states
                result = self.model.transcribe(audio, **kwargs)
                audio_s = result.timings.get("audio_seconds", audio_s)
            finally:
                if spread:
                    self._spreading = False
            texts = [render(result, fmt, source=source) for fmt in self.job.formats]
            if self.stopping.is_set():
                return Outcome(path, "cancelled", audio_s)
            if outputs is None:
                return Outcome(path, "done", audio_s, time.perf_counter() - t0,
                               texts=dict(zip(self.job.formats, texts)))
            write_texts([Path(p) for p in outputs], texts)
        except Cancelled:
            return Outcome(path, "cancelled", audio_s)
        except Exception as exc:
            # A bad option (a language an English-only model cannot do ...) fails every file alike.
            fatal = isinstance(exc, (ValueError, TypeError)) and not isinstance(exc, (AudioError, ModelError))
            return Outcome(path, "failed", audio_s, time.perf_counter() - t0, type(exc).__name__, str(exc),
                           fatal=fatal)
        return Outcome(path, "done", audio_s, time.perf_counter() - t0)

    def _claim_spread(self) -> bool:
        with self._spread_lock:
            if self._spreading:
                return False
            self._spreading = True
            return True

    def stop(self) -> None:
        """Stop running calls (they return ``cancelled``) and refuse new ones."""
        self.stopping.set()
        self.model.cancel()

    def close(self) -> None:
        self.model.close()


class Tally:
    """The running count of a batch, its progress bar and its failure log."""

    def __init__(self, out_dir: Path, total: int, settings: Dict[str, object], progress: bool) -> None:
        self.out_dir = out_dir
        self.settings = settings
        self.total = total
        self.done = self.skipped = self.failed = 0
        self.audio_seconds = 0.0
        self.nodes: set = set()
        self.t0 = time.perf_counter()
        self.started = time.time()
        self.failures_path = out_dir / FAILURES_NAME
        # This run's failures: a file that fails again is recorded again, one that now
        # succeeds is not (its outputs exist).
        self._failures = open(self.failures_path, "w", encoding="utf-8")
        self.bar = None
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="file", file=sys.stderr, dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} files [{elapsed}<{remaining}{postfix}]")

    def skip(self, n: int) -> None:
        self.skipped += n
        if self.bar is not None and n:
            self.bar.update(n)

    def add(self, outcome: Outcome) -> None:
        if outcome.node:
            self.nodes.add(outcome.node)
        if outcome.status == "done":
            self.done += 1
            self.audio_seconds += outcome.audio_seconds
        elif outcome.status == "failed":
            self.failed += 1
            rec = {"path": outcome.path, "error_type": outcome.error_type, "message": outcome.message,
                   "attempts": outcome.attempts, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            self._failures.write(json.dumps(rec, ensure_ascii=False) + "\n")
            self._failures.flush()
            os.fsync(self._failures.fileno())
        else:
            return
        if self.bar is not None:
            wall = time.perf_counter() - self.t0
            self.bar.set_postfix_str(f"{self.audio_seconds / 3600:.2f} h audio, "
                                     f"{self.audio_seconds / max(wall, 1e-9):.1f}x real time", refresh=False)
            self.bar.update(1)

    def summary(self, interrupted: bool = False) -> Dict[str, object]:
        wall = time.perf_counter() - self.t0
        s = {
            "files": self.total,
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "remaining": self.total - self.done - self.skipped - self.failed,
            "audio_seconds": round(self.audio_seconds, 3),
            "wall_seconds": round(wall, 3),
            "throughput_x_realtime": round(self.audio_seconds / wall, 3) if wall > 0 else 0.0,
            "interrupted": interrupted,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            **self.settings,
        }
        if self.nodes:
            s["nodes"] = len(self.nodes)
        return s

    def finish(self, interrupted: bool = False) -> Dict[str, object]:
        if self.bar is not None:
            self.bar.close()
        self._failures.close()
        s = self.summary(interrupted)
        with atomic_write(self.out_dir / SUMMARY_NAME, overwrite=True) as f:
            f.write((json.dumps(s, indent=2) + "\n").encode("utf-8"))
        return s


def describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()
