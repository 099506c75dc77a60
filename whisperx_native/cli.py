"""Command line: ``whisperx-native`` (also ``python -m whisperx_native``).

    whisperx-native transcribe FILE... [--model NAME|PATH] [--language auto|en|..] [--translate]
                    [--threads N] [--beam-size N] [--word-timestamps] [--vad] [--prompt TEXT]
                    [--output-format txt,srt,vtt,json,tsv|all] [--output-dir DIR] [--quiet]
    whisperx-native models ...           (when the model store is installed)
    whisperx-native convert CT2_DIR OUT.bin
    whisperx-native info [--json]

Exit codes: 0 all good; 1 some file failed (the others were still transcribed);
2 bad usage, or a model that cannot be loaded; 130 interrupted. Errors are one line
on stderr; ``--verbose`` adds tracebacks and whisper.cpp's log.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform
import sys
import traceback
from pathlib import Path
from typing import Dict, List, Optional

from .errors import AudioError, WhisperError
from .output.formats import FORMATS

EXIT_OK, EXIT_FILE_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: Files at least this long (seconds) get a progress bar: shorter ones finish before it helps.
PROGRESS_MIN_SECONDS = 15.0


class UsageError(Exception):
    """A problem with the command itself: reported in one line, exit code 2."""


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {n}")
    return n


def _format_list(value: str) -> List[str]:
    names = [v.strip().lower() for v in value.split(",") if v.strip()]
    if names == ["all"]:
        return list(FORMATS)
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown format {','.join(bad) or value!r}; "
                                         f"choose from {','.join(FORMATS)} or all")
    return list(dict.fromkeys(names))


def _models_cli():
    """The model store's ``models`` commands, when that package part is installed."""
    name = f"{__package__}.models.cli"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise  # a real bug inside it, not its absence
        return None


def _parser(models_cli) -> argparse.ArgumentParser:
    from .models.store import DEFAULT_MODEL

    ap = argparse.ArgumentParser(prog="whisperx-native", description="Whisper speech recognition on whisper.cpp")
    # --verbose works before or after the subcommand: SUPPRESS keeps one from overwriting the other.
    ap.add_argument("--verbose", "-v", action="store_true", help="tracebacks and whisper.cpp's log")
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS,
                         help="tracebacks and whisper.cpp's log")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("transcribe", parents=[verbose], help="transcribe audio or video files",
                       description="Transcribe files; one failing file is reported and the others still run.")
    t.add_argument("files", nargs="+", metavar="FILE",
                   help="WAV, FLAC, OGG, MP3 ... (M4A, MP4, WebM ... with the av extra)")
    t.add_argument("--model", "-m", default=DEFAULT_MODEL,
                   help=f"model name or ggml file (default: {DEFAULT_MODEL})")
    t.add_argument("--language", "-l", default="auto", help="language code (en, de, ...) or auto (default)")
    t.add_argument("--translate", action="store_true", help="translate to English")
    t.add_argument("--threads", "-t", type=_positive_int, default=None,
                   help="CPU threads (default: min(4, cores))")
    t.add_argument("--preset", choices=["accurate", "fast"], default="accurate",
                   help="accurate: beam search with fallback (default); fast: greedy")
    t.add_argument("--beam-size", type=_positive_int, default=None, help="beam width (default 5; 1 is greedy)")
    t.add_argument("--word-timestamps", action="store_true", help="time each word (in JSON output)")
    t.add_argument("--vad", action="store_true", help="skip silence with voice activity detection")
    t.add_argument("--prompt", default=None, help="initial prompt: spelling, names, style")
    t.add_argument("--output-format", "-f", type=_format_list, default=["txt"], metavar="FMT[,FMT]",
                   help=f"{','.join(FORMATS)} or all (default: txt)")
    t.add_argument("--output-dir", "-o", type=Path, default=None,
                   help="write DIR/NAME.FMT per file and format (default: print to stdout)")
    t.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no per-file summary")

    if models_cli is not None:
        models_cli.add_parser(sub)

    c = sub.add_parser("convert", parents=[verbose], help="convert a CTranslate2 (faster-whisper) model to ggml")
    c.add_argument("src", help="CTranslate2 model directory (model.bin, config.json, vocabulary)")
    c.add_argument("dst", help="output ggml file")
    c.add_argument("--force", action="store_true", help="overwrite an existing output")

    i = sub.add_parser("info", parents=[verbose], help="version, whisper.cpp build, CPU features, decoders")
    i.add_argument("--json", action="store_true", help="machine-readable")
    return ap


# ---------------------------------------------------------------------------- transcribe
def _decode_options(args) -> Dict[str, object]:
    options: Dict[str, object] = {"language": args.language, "translate": args.translate}
    if args.beam_size is not None:
        options["beam_size"] = args.beam_size
    if args.prompt:
        options["initial_prompt"] = args.prompt
    if args.word_timestamps:
        options["token_timestamps"] = True
    if args.vad:
        options["vad"] = True
    return options


class _OutputNames:
    """DIR/STEM.FMT per input; a second input with the same stem gets STEM-2 (nothing overwritten)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.used: set = set()

    def stem(self, path: str) -> Path:
        base = Path(path).stem or "audio"
        stem, n = base, 1
        while stem in self.used:
            n += 1
            stem = f"{base}-{n}"
        self.used.add(stem)
        return self.directory / stem


class _Progress:
    """A tqdm bar fed by whisper.cpp's progress percentage."""

    def __init__(self, name: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=100, desc=name, unit="%", leave=False, file=sys.stderr,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def __call__(self, percent: int) -> None:
        self.bar.update(max(0, min(100, percent) - self.bar.n))

    def close(self) -> None:
        self.bar.close()


def _transcribe_one(model, path: str, args, options, names: Optional[_OutputNames]) -> None:
    from .audio import SAMPLE_RATE, load_audio
    from .output import render, write

    samples = load_audio(path)
    seconds = samples.size / SAMPLE_RATE
    progress = None
    if not args.quiet and seconds >= PROGRESS_MIN_SECONDS:
        progress = _Progress(Path(path).name)
    try:
        result = model.transcribe(samples, preset=args.preset, progress_callback=progress, **options)
    finally:
        if progress is not None:
            progress.close()
    written = []
    if names is None:
        for fmt in args.output_format:
            sys.stdout.write(render(result, fmt, source=path))
        sys.stdout.flush()
    else:
        stem = names.stem(path)
        for fmt in args.output_format:
            written.append(str(write(result, fmt, Path(f"{stem}.{fmt}"), source=path)))
    if not args.quiet:
        t = result.timings
        lang = result.language or "?"
        if result.language_probability is not None:
            lang += f" ({result.language_probability:.0%})"
        out = f" → {', '.join(written)}" if written else ""
        print(f"{path}: {seconds:.1f} s audio, {lang}, {t.get('total_ms', 0.0) / 1000:.2f} s, "
              f"real-time factor {t.get('real_time_factor', 0.0):.3f}{out}", file=sys.stderr)


def _transcribe(args) -> int:
    from .model import Model

    options = _decode_options(args)
    names = None
    if args.output_dir is not None:
        try:
            args.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create output directory {args.output_dir}: {exc.strerror or exc}") from None
        names = _OutputNames(args.output_dir)
    failed = 0
    with Model(args.model, n_threads=args.threads) as model:
        for path in args.files:
            try:
                _transcribe_one(model, path, args, options, names)
            except AudioError as exc:  # names the file already
                failed += 1
                _report(str(exc), args.verbose)
            except (ValueError, TypeError) as exc:  # bad options: every file would fail the same way
                raise UsageError(str(exc)) from exc
            except Exception as exc:  # this file's problem, whatever it is: go on with the next
                failed += 1
                _report(f"{path}: {exc}", args.verbose)
    if failed and len(args.files) > 1 and not args.quiet:
        print(f"{failed} of {len(args.files)} files failed", file=sys.stderr)
    return EXIT_FILE_FAILED if failed else EXIT_OK


def _report(message: str, verbose: bool) -> None:
    if verbose:
        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------- other commands
def _convert(args) -> int:
    from .convert import convert_ct2

    out = convert_ct2(args.src, args.dst, overwrite=args.force)
    print(out)
    return EXIT_OK


def _info_dict() -> Dict[str, object]:
    from . import __version__, build_info

    info: Dict[str, object] = {"whisperx_native": __version__, **build_info()}
    # system_info reads "WHISPER : COREML = 0 | ... | CPU : SSE3 = 1 | AVX = 1 | ...": keep the "= 1" names.
    info["cpu_features"] = [part.split("=")[0].split(":")[-1].strip()
                            for part in str(info["system_info"]).split("|") if part.strip().endswith("= 1")]
    info["python"] = platform.python_version()
    decoders = {}
    for module, attr in (("soundfile", "__libsndfile_version__"), ("soxr", "__version__"), ("av", "__version__")):
        try:
            decoders[module] = getattr(__import__(module), attr, "?")
        except ImportError:
            decoders[module] = None
    info["audio"] = decoders
    return info


def _info(args) -> int:
    info = _info_dict()
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK

    def yes(flag) -> str:
        return "yes" if flag else "no"

    audio = info["audio"]
    rows = [
        ("whisperx_native", info["whisperx_native"]),
        ("whisper.cpp", info["whisper_cpp"]),
        ("compiler", info["compiler"]),
        ("native CPU build", yes(info["native_cpu"])),
        ("CPU features", " ".join(info["cpu_features"]) or "-"),
        ("AMX off (GCC < 13)", yes(info["amx_disabled_for_gcc"])),
        ("CUDA / Metal / Vulkan", " / ".join(yes(info[k]) for k in ("cuda", "metal", "vulkan"))),
        ("libsndfile", audio["soundfile"] or "not installed"),
        ("soxr", audio["soxr"] or "not installed"),
        ("FFmpeg (PyAV)", audio["av"] or "not installed: pip install 'whisperx_native[av]'"),
        ("python", info["python"]),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the exit code."""
    models_cli = _models_cli()
    args = _parser(models_cli).parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("whisperx_native.native").setLevel(logging.ERROR)
    commands = {"transcribe": _transcribe, "convert": _convert, "info": _info}
    if models_cli is not None:
        commands["models"] = models_cli.run
    try:
        return commands[args.command](args)
    except (UsageError, WhisperError, OSError) as exc:
        _report(str(exc), args.verbose)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout closed early (| head): stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FILE_FAILED


if __name__ == "__main__":
    sys.exit(main())
