"""Command line: ``whisperx-native`` (also ``python -m whisperx_native``).

    whisperx-native transcribe FILE... [--model NAME|PATH] [--language auto|en|..]
    whisperx-native convert CT2_DIR OUT.bin
    whisperx-native info

Exit codes: 0 all good, 1 some file failed, 2 bad usage or model error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import List, Optional

from .errors import WhisperError

EXIT_OK, EXIT_FILE_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    from .models.store import DEFAULT_MODEL

    ap = argparse.ArgumentParser(prog="whisperx-native", description="Whisper speech recognition on whisper.cpp")
    ap.add_argument("--verbose", "-v", action="store_true", help="native logs and tracebacks")
    sub = ap.add_subparsers(dest="command", required=True)

    t = sub.add_parser("transcribe", help="transcribe audio files")
    t.add_argument("files", nargs="+", help="16 kHz mono WAV files")
    t.add_argument("--model", "-m", default=DEFAULT_MODEL, help=f"model name or ggml path (default: {DEFAULT_MODEL})")
    t.add_argument("--language", "-l", default="auto", help="language code, or auto (default)")
    t.add_argument("--translate", action="store_true", help="translate to English")
    t.add_argument("--threads", "-t", type=int, default=None, help="CPU threads (default: min(4, cores))")
    t.add_argument("--preset", choices=["accurate", "fast"], default="accurate")
    t.add_argument("--beam-size", type=int, default=None)
    t.add_argument("--prompt", default=None, help="initial prompt")
    t.add_argument("--output-format", "-f", default="txt", choices=["txt", "json"])
    t.add_argument("--quiet", "-q", action="store_true", help="no per-file summary on stderr")

    c = sub.add_parser("convert", help="convert a CTranslate2 (faster-whisper) model to ggml")
    c.add_argument("src", help="CTranslate2 model directory (model.bin, config.json, vocabulary)")
    c.add_argument("dst", help="output ggml file")
    c.add_argument("--force", action="store_true", help="overwrite an existing output")

    sub.add_parser("info", help="version, whisper.cpp build and CPU features")
    return ap


def _transcribe(args) -> int:
    from .model import Model

    options = {"language": args.language, "translate": args.translate}
    if args.beam_size is not None:
        options["beam_size"] = args.beam_size
    if args.prompt:
        options["initial_prompt"] = args.prompt
    failed = 0
    with Model(args.model, n_threads=args.threads) as model:
        for path in args.files:
            try:
                result = model.transcribe(path, preset=args.preset, **options)
            except WhisperError as exc:
                failed += 1
                print(f"error: {path}: {exc}", file=sys.stderr)
                if args.verbose:
                    raise
                continue
            if args.output_format == "json":
                print(result.to_json())
            else:
                print(result.text)
            if not args.quiet:
                t = result.timings
                print(f"{path}: {t['audio_seconds']:.1f} s audio, language {result.language}, "
                      f"{t['total_ms'] / 1000:.2f} s, real-time factor {t['real_time_factor']:.3f}",
                      file=sys.stderr)
    return EXIT_FILE_FAILED if failed else EXIT_OK


def _convert(args) -> int:
    from .convert import convert_ct2

    out = convert_ct2(args.src, args.dst, overwrite=args.force)
    print(out)
    return EXIT_OK


def _info(args) -> int:
    from . import __version__, build_info

    print(json.dumps({"whisperx_native": __version__, **build_info()}, indent=2))
    return EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("whisperx_native.native").setLevel(logging.ERROR)
    try:
        return {"transcribe": _transcribe, "convert": _convert, "info": _info}[args.command](args)
    except WhisperError as exc:
        if args.verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
