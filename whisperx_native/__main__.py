"""``python -m whisperx_native`` and the ``whisperx-native`` command (``run``)."""

import os
import sys


def run() -> int:
    # The command never calls BLAS (features.py computes the mel without it), so numpy's
    # OpenBLAS threads would only spin at start-up: ~0.07 cpu-s, a tenth of a short file's run.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from .cli import main

    return main()


if __name__ == "__main__":
    sys.exit(run())
