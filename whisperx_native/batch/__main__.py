"""``python -m whisperx_native.batch INPUT... -o OUT_DIR`` (the ``batch`` subcommand on its own)."""

import sys

from .cli import main

sys.exit(main())
