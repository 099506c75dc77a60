"""``whisperx-native batch``: the command line of ``transcribe_many``.

    whisperx-native batch INPUT... -o OUT_DIR [-f json,srt,...] [--model NAME] [--language ..]
                          [--preset accurate|fast] [--word-timestamps] [--vad] ...
                          [--engine local|ray] [--workers N] [--threads-per-worker T] [--address RAY]

``add_parser(subparsers)`` adds the subcommand to an argparse parser; ``run(args)``
runs it and returns the exit code: 0 every file done (or already done), 1 some file
failed (see OUT_DIR/failures.jsonl), 2 bad usage or a model that cannot be loaded,
130 interrupted (Ctrl-C), 143 stopped by SIGTERM (as cleanly as Ctrl-C). ``python -m whisperx_native.batch`` is the same command on its own.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Dict, List, Optional

from ..cli import _positive_int  # the transcribe command's argument type (cli imports us lazily)

__all__ = ["add_parser", "run", "main"]

EXIT_OK, EXIT_FILE_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


def _format_list(value: str) -> List[str]:
    from .api import _formats

    try:
        return _formats(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``batch`` subcommand (and its options) to an argparse ``subparsers`` object."""
    from ..models.store import DEFAULT_MODEL

    b = subparsers.add_parser(
        "batch", help="transcribe many files: folders, patterns, lists; resumable; local or on Ray",
        description="Transcribe many files into OUT_DIR, mirroring their folders. Files whose outputs already "
                    "exist are skipped; failures go to OUT_DIR/failures.jsonl; OUT_DIR/summary.json sums up.")
    b.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="audio/video files, directories (recursive), glob patterns ('talks/**/*.mp3'), or @list.txt")
    b.add_argument("--output-dir", "-o", type=Path, required=True, help="where the outputs go")
    b.add_argument("--output-format", "-f", type=_format_list, default=["txt"], metavar="FMT[,FMT]",
                   help="txt,srt,vtt,json,tsv or all (default: txt)")
    b.add_argument("--model", "-m", default=DEFAULT_MODEL, help=f"model name or ggml file (default: {DEFAULT_MODEL})")
    b.add_argument("--language", "-l", default="auto", help="language code (en, de, ...) or auto (default)")
    b.add_argument("--translate", action="store_true", help="translate to English")
    b.add_argument("--preset", choices=["accurate", "fast"], default="accurate",
                   help="accurate: beam search with fallback (default); fast: greedy")
    b.add_argument("--beam-size", type=_positive_int, default=None, help="beam width (default 5; 1 is greedy)")
    b.add_argument("--word-timestamps", action="store_true", help="time each word (in JSON output)")
    b.add_argument("--vad", action="store_true", help="skip silence with voice activity detection")
    b.add_argument("--prompt", default=None, help="initial prompt: spelling, names, style")
    b.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: threads on one loaded model (default); ray: Ray actors (pip install 'whisperx_native[ray]')")
    b.add_argument("--workers", "-w", type=_positive_int, default=None,
                   help="files transcribed at once (default: cores / threads per worker)")
    b.add_argument("--threads-per-worker", "-t", type=_positive_int, default=None,
                   help="CPU threads per file (default: cores / workers, 1 when neither is given)")
    b.add_argument("--address", default=None,
                   help="Ray cluster address (host:port or 'auto'; default: start a local Ray); implies --engine ray")
    b.add_argument("--states-per-actor", type=_positive_int, default=1,
                   help="ray: workers per actor sharing one copy of the weights (default 1)")
    b.add_argument("--write-on", choices=["driver", "workers"], default="driver",
                   help="ray: who writes the outputs; 'workers' needs OUT_DIR on storage every node shares")
    b.add_argument("--overwrite", action="store_true", help="transcribe again files whose outputs exist")
    b.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary line")
    b.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS,
                   help="tracebacks and whisper.cpp's log")
    return b


def _options(args) -> Dict[str, object]:
    options: Dict[str, object] = {"language": args.language, "translate": args.translate}
    if args.beam_size is not None:
        options["beam_size"] = args.beam_size
    if args.prompt:
        options["initial_prompt"] = args.prompt
    if args.word_timestamps:
        options["word_timestamps"] = True
    if args.vad:
        options["vad"] = True
    return options


def run(args) -> int:
    """Run ``batch`` with parsed ``args``; returns the exit code."""
    from ..errors import WhisperError
    from .api import BatchError, transcribe_many

    verbose = getattr(args, "verbose", False)
    engine = "ray" if args.address else args.engine
    if engine == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            print("error: the ray engine needs Ray: pip install 'whisperx_native[ray]'", file=sys.stderr)
            return EXIT_USAGE
    # SIGTERM (a scheduler stopping the job, `kill`) stops as cleanly as Ctrl-C.
    terminated = []

    def on_sigterm(signum, frame):
        terminated.append(signum)
        raise KeyboardInterrupt

    main_thread = threading.current_thread() is threading.main_thread()
    old_handler = signal.signal(signal.SIGTERM, on_sigterm) if main_thread else None
    try:
        summary = transcribe_many(args.inputs, args.output_dir, engine=engine, workers=args.workers,
                                  threads_per_worker=args.threads_per_worker, model=args.model,
                                  formats=args.output_format, preset=args.preset, address=args.address,
                                  states_per_actor=args.states_per_actor, write_on=args.write_on,
                                  overwrite=args.overwrite, progress=not args.quiet, **_options(args))
    except KeyboardInterrupt:
        what = "terminated" if terminated else "interrupted"
        print(f"{what}: finished files are written, see {args.output_dir / 'summary.json'}", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except (BatchError, WhisperError, ValueError, TypeError, OSError) as exc:
        if verbose:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, old_handler)
    if not args.quiet:
        s = summary
        print(f"{s['done']} done, {s['skipped']} skipped, {s['failed']} failed of {s['files']} files; "
              f"{s['audio_seconds'] / 3600:.2f} h audio in {s['wall_seconds']:.1f} s "
              f"({s['throughput_x_realtime']:.1f}x real time) -> {args.output_dir / 'summary.json'}",
              file=sys.stderr)
        if s["failed"]:
            print(f"failures: {args.output_dir / 'failures.jsonl'}", file=sys.stderr)
    return EXIT_FILE_FAILED if summary["failed"] else EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m whisperx_native.batch ARGS`` (the same as ``whisperx-native batch ARGS``)."""
    ap = argparse.ArgumentParser(prog="python -m whisperx_native.batch")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_parser(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "batch":
        argv = ["batch", *argv]
    args = ap.parse_args(argv)
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")
    if not verbose:
        logging.getLogger("whisperx_native.native").setLevel(logging.ERROR)
    return run(args)
