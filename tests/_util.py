"""Small helpers shared by the tests (not fixtures: those live in conftest.py)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from whisperx_native._textnorm import normalize  # noqa: F401 - re-exported for the tests

REPO = Path(__file__).resolve().parent.parent
JFK_WAV = REPO / "vendor" / "whisper.cpp" / "samples" / "jfk.wav"
JFK_TEXT = ("And so my fellow Americans ask not what your country can do for you, "
            "ask what you can do for your country.")


def run_python(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; fail the test if it died by a signal."""
    # Run outside the checkout: `python -c` puts the working directory first on sys.path,
    # and the source tree's whisperx_native has no compiled extension in it.
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, cwd=tempfile.gettempdir())
    assert proc.returncode >= 0, (f"interpreter killed by signal {-proc.returncode}\n"
                                  f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}")
    return proc
