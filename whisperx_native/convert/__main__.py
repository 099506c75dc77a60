"""``python -m whisperx_native.convert CT2_DIR OUT.bin``: CTranslate2 -> whisper.cpp."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from ..errors import ModelError
from ..models.ggml_file import validate
from .ct2_to_ggml import convert_ct2


def add_arguments(parser: argparse.ArgumentParser, *short: str) -> None:
    """The conversion's arguments, for this module and ``whisperx-native convert`` alike:
    ``--overwrite`` (the API's keyword, as ``batch --overwrite``), ``--force`` an alias."""
    parser.add_argument("src", help="CTranslate2 model directory (model.bin, config.json, vocabulary)")
    parser.add_argument("dst", help="output ggml .bin file")
    parser.add_argument(*short, "--overwrite", "--force", dest="overwrite", action="store_true",
                        help="replace DST if it exists (--force: the same)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m whisperx_native.convert",
        description="Convert a CTranslate2 (faster-whisper) Whisper model to a whisper.cpp ggml file (F16).",
    )
    add_arguments(parser, "-f")  # -f: this command's short form from before
    args = parser.parse_args(argv)

    start = time.perf_counter()
    try:
        out = convert_ct2(args.src, args.dst, overwrite=args.overwrite)
        info = validate(out)
    except (ModelError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    hp = info.hparams
    print(
        f"{out}: {info.model_type}{'' if hp.is_multilingual else '.en'}, "
        f"{len(info.tensors)} tensors, {info.file_size / 1e6:.1f} MB, "
        f"{time.perf_counter() - start:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
