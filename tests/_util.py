"""Small helpers shared by the tests (not fixtures: those live in conftest.py)."""

from __future__ import annotations

import re
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
JFK_WAV = REPO / "vendor" / "whisper.cpp" / "samples" / "jfk.wav"
JFK_TEXT = ("And so my fellow Americans ask not what your country can do for you, "
            "ask what you can do for your country.")


_PUNCT = re.compile(r"[^\w\s']")


def normalize(text: str) -> str:
    """Transcripts compared case and punctuation aside (the tests' and the bench's WER):
    lower case, punctuation replaced by spaces, single spaces."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def run_python(code: str, timeout: float = 300, env: "dict | None" = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (``env``: variables set beside ours); fail the test
    if it died by a signal."""
    # Run outside the checkout: `python -c` puts the working directory first on sys.path,
    # and the source tree's whisperx_native has no compiled extension in it.
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, cwd=tempfile.gettempdir(),
                          env=None if env is None else {**os.environ, **env})
    assert proc.returncode >= 0, (f"interpreter killed by signal {-proc.returncode}\n"
                                  f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}")
    return proc


# Linux carries a process's peak RSS across fork and exec: a child of pytest would report at
# least pytest's size. A small Python in between starts the measured one (bench/runners.py).
RSS_PROBE = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:]); _, st, ru = os.wait4(p.pid, 0); "
             "print(ru.ru_maxrss if os.waitstatus_to_exitcode(st) == 0 else -1)")


def peak_rss_mb(code: str, *args: str, timeout: float = 600, env: "dict | None" = None,
                cwd: "str | None" = None) -> float:
    """Whole-process peak RSS (MB: MiB, ``ru_maxrss`` / 1024) of ``python -c code args...``."""
    proc = subprocess.run([sys.executable, "-c", RSS_PROBE, sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd or tempfile.gettempdir(),
                          env=None if env is None else {**os.environ, **env})
    kb = int(proc.stdout.strip().splitlines()[-1])
    assert kb > 0, proc.stderr[-4000:]
    return kb / 1024


def default_sigint() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT: Ctrl-C's default action.
    A runner started as a background job of a non-interactive shell ignores SIGINT, and
    children inherit that: the CLI would then rightly go on, and the test would see rc 0."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
