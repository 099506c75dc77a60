"""Command line: ``whisperx-native`` (also ``python -m whisperx_native``).

    whisperx-native transcribe FILE|DIR|-... [--model NAME|PATH] [--language auto|en|..]
                    [--task transcribe|translate] [--threads N] [--beam-size N] [--best-of N]
                    [--temperature T] [--word-timestamps] [--no-timestamps] [--max-len N]
                    [--split-on-word] [--vad] [--prompt TEXT]
                    [--max-line-width N] [--max-line-count N] [--max-words-per-line N] [--highlight-words]
                    [--output-format txt,srt,vtt,json,tsv,csv|all] [--output-dir DIR] [--quiet]
    whisperx-native models ...           (when the model store is installed)
    whisperx-native batch ...            (when the batch package is installed)
    whisperx-native convert CT2_DIR OUT.bin
    whisperx-native info [--json]

Inputs: files, directories (their audio and video files, recursively, sorted) and ``-``
(stdin, read whole). whisper-cli's ``-otxt -osrt -ovtt -oj -ojf -ocsv -ml -sow -bs -bo -tr
-nt -tp -np -pp`` and openai-whisper's underscore spellings (``--output_format``,
``--word_timestamps True``) are accepted; ``-olrc -owts -of`` are refused with a pointer.

Without ``-o``, results go to stdout: one format; several files (or a directory) as JSON
Lines with ``-f json``, as txt with a ``==> NAME <==`` line before each file; SRT, VTT,
TSV and CSV of several files need ``-o``. On a terminal, txt is printed segment by
segment as it is decoded.

Exit codes: 0 all good; 1 some file failed (the others were still transcribed);
2 bad usage, or a model that cannot be loaded; 130 interrupted (Ctrl-C: the command ends
within a fraction of a second, nothing is printed, no file is half written);
141 stdout closed by its reader (``| head``: the run ends at once, quietly). Errors are
one line on stderr; ``--verbose`` adds tracebacks and whisper.cpp's log.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import platform
import sys
import threading
import traceback
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

from .errors import AudioError, Cancelled, WhisperError
from .models import cli as models_cli
from .output.formats import FORMATS

EXIT_OK, EXIT_FILE_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_PIPE = 0, 1, 2, 130, 141

#: Files at least this long (seconds) get a progress bar: shorter ones finish before it helps.
PROGRESS_MIN_SECONDS = 15.0

#: What a directory argument contributes: audio and video files, by extension.
AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .flac .ogg .oga .opus .spx .mp3 .mp2 .mpga .m4a .m4b .aac .wma .aif .aiff .aifc .caf .amr .au "
    ".snd .w64 .webm .mp4 .m4v .mov .mkv .avi .wmv .mpeg .mpg .3gp .ts .mts .flv".split())

#: Formats that are one document per file: several files in one stream would not parse.
_DOCUMENT_FORMATS = ("srt", "vtt", "tsv", "csv")

#: How often the waiting main thread looks at Ctrl-C and a closed stdout (seconds).
_POLL_S = 0.05

STDIN = "-"

# --------------------------------------------------------------------------- habits of other tools
#: whisper-cli's output switches (``-osrt`` would otherwise read as ``-o srt``: a directory).
_WHISPER_CLI_FORMATS = {
    "-otxt": "txt", "--output-txt": "txt", "-osrt": "srt", "--output-srt": "srt", "-ovtt": "vtt",
    "--output-vtt": "vtt", "-oj": "json", "--output-json": "json",
    "-ocsv": "csv", "--output-csv": "csv",
}
#: whisper-cli's multi-letter short options with an equivalent here (None: nothing to do).
_WHISPER_CLI_OPTIONS = {
    "-ml": "--max-len", "-sow": "--split-on-word", "-bs": "--beam-size", "-bo": "--best-of", "-tr": "--translate",
    "-nt": "--no-timestamps", "-tp": "--temperature", "-np": "--quiet", "--no-prints": "--quiet",
    "-pp": None, "--print-progress": None,
}
#: whisper-cli's options that have no equivalent: refused with a pointer.
_WHISPER_CLI_REFUSED = {
    "-olrc": "LRC is not written here; -f takes txt, srt, vtt, json, tsv, csv or all",
    "--output-lrc": "LRC is not written here; -f takes txt, srt, vtt, json, tsv, csv or all",
    "-owts": "karaoke scripts are not written here; --highlight-words writes karaoke SRT/VTT cues, "
             "--word-timestamps -f json every word's time",
    "--output-words": "karaoke scripts are not written here; --highlight-words writes karaoke SRT/VTT cues, "
             "--word-timestamps -f json every word's time",
    "-of": "whisper-cli's -of names the output file; here -o DIR is a directory and files are DIR/NAME.FORMAT",
    "--output-file": "whisper-cli's --output-file names the output file; here -o DIR is a directory "
                     "and files are DIR/NAME.FORMAT",
}
#: Switches that openai-whisper's CLI writes with a value (``--word_timestamps True``).
_BOOL_FLAGS = {"--word-timestamps", "--vad", "--translate", "--no-timestamps", "--split-on-word", "--verbose",
               "--highlight-words"}
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}
#: A -o value that is one of these is a format, not a directory (whisper-cli's -osrt misread).
_FORMAT_WORDS = set(FORMATS) | {"all", "j", "jf", "lrc", "wts", "words", "json-full"}


class UsageError(Exception):
    """A problem with the command itself: reported in one line, exit code 2."""


def _translate_argv(argv: List[str]) -> List[str]:
    """Spellings of whisper-cli and openai-whisper → ours (see the module docstring)."""
    out: List[str] = []
    in_transcribe = False
    i = 0
    while i < len(argv):
        tok = argv[i]
        i += 1
        if tok == "--":
            out.extend(argv[i - 1:])
            break
        if tok.startswith("--") and "_" in tok.split("=", 1)[0]:
            name, eq, value = tok.partition("=")
            tok = name.replace("_", "-") + eq + value
        if not in_transcribe:
            in_transcribe = tok == "transcribe"
            out.append(tok)
            continue
        if tok in ("-ojf", "--output-json-full"):  # whisper-cli turns token timestamps on for it
            out += ["--whisper-cli-format", "json", "--word-timestamps"]
            continue
        if tok in _WHISPER_CLI_FORMATS:
            out += ["--whisper-cli-format", _WHISPER_CLI_FORMATS[tok]]
            continue
        if tok in _WHISPER_CLI_REFUSED:
            raise UsageError(f"{tok}: {_WHISPER_CLI_REFUSED[tok]}")
        if tok in _WHISPER_CLI_OPTIONS:
            if _WHISPER_CLI_OPTIONS[tok] is not None:
                out.append(_WHISPER_CLI_OPTIONS[tok])
            continue
        if tok in _BOOL_FLAGS and i < len(argv) and argv[i].lower() in _TRUE | _FALSE:
            if argv[i].lower() in _TRUE:
                out.append(tok)
            elif tok == "--vad":  # the default is automatic: False must say so
                out.append("--no-vad")
            i += 1
            continue
        out.append(tok)
    return out


# --------------------------------------------------------------------------- argument types
def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {n}")
    return n


def _temperature(value: str) -> float:
    try:
        t = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 0.0 <= t <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in 0..1, got {value}")
    return t


def _bool(value: str) -> bool:
    if value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise argparse.ArgumentTypeError(f"not True or False: {value!r}")


def _format_list(value: str) -> List[str]:
    names = [v.strip().lower() for v in value.split(",") if v.strip()]
    if names == ["all"]:
        return list(FORMATS)
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        if "/" in value or os.path.exists(value) or Path(value).suffix.lower() in AUDIO_EXTENSIONS:
            # whisper-cli's -f is its input file
            raise argparse.ArgumentTypeError(f"{value!r}: -f sets the output format here ({','.join(FORMATS)} "
                                             "or all); give the audio files as arguments")
        raise argparse.ArgumentTypeError(f"unknown format {','.join(bad) or value!r}; "
                                         f"choose from {','.join(FORMATS)} or all")
    return list(dict.fromkeys(names))


def _version() -> str:
    from . import __version__

    try:
        from ._native import build_info

        return f"whisperx-native {__version__} (whisper.cpp {build_info()['whisper_cpp']})"
    except Exception:  # pragma: no cover - a broken native build still says our version
        return f"whisperx-native {__version__}"


def _parser() -> argparse.ArgumentParser:
    from .batch import cli as batch_cli  # it imports this module: imported here, when it is used
    from .models.store import DEFAULT_MODEL

    ap = argparse.ArgumentParser(prog="whisperx-native", description="Whisper speech recognition on whisper.cpp")
    ap.add_argument("--version", action="version", version=_version())
    # --verbose works before or after the subcommand: SUPPRESS keeps one from overwriting the other.
    ap.add_argument("--verbose", "-v", action="store_true", help="tracebacks and whisper.cpp's log")
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS,
                         help="tracebacks and whisper.cpp's log")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser(
        "transcribe", parents=[verbose], help="transcribe audio or video files",
        description="Transcribe files, directories (recursively) or - (stdin); one failing file is reported "
                    "and the others still run. whisper-cli's -osrt/-ovtt/-otxt/-oj/-ocsv/-ml/-sow and "
                    "openai-whisper's --output_format style spellings are accepted.")
    t.add_argument("files", nargs="+", metavar="FILE",
                   help="WAV, FLAC, OGG, MP3 ... (M4A, MP4, WebM ... with the av extra); a directory: its audio "
                        "and video files, recursively; -: read stdin")
    t.add_argument("--model", "-m", default=DEFAULT_MODEL,
                   help=f"model name or ggml file (default: {DEFAULT_MODEL})")
    t.add_argument("--language", "-l", default="auto", help="language code (en, de, ...) or auto (default)")
    t.add_argument("--task", choices=["transcribe", "translate"], default="transcribe",
                   help="translate: into English (as --translate)")
    t.add_argument("--translate", action="store_true", help="translate to English")
    t.add_argument("--threads", "-t", type=_positive_int, default=None,
                   help="CPU threads (default: min(4, cores), fewer while other processes keep cores busy; "
                        "a count given here is used as it is)")
    t.add_argument("--adapt-threads", action=argparse.BooleanOptionalAction, default=True,
                   help="with the default thread count, use only the cores other processes leave free "
                        "(results do not depend on the thread count)")
    t.add_argument("--preset", choices=["accurate", "fast"], default="accurate",
                   help="accurate: beam search with fallback (default); fast: greedy")
    t.add_argument("--beam-size", type=_positive_int, default=None, help="beam width (default 5; 1 is greedy)")
    t.add_argument("--best-of", type=_positive_int, default=None,
                   help="candidates sampled at a temperature above 0 (default 5)")
    t.add_argument("--temperature", type=_temperature, default=None,
                   help="first sampling temperature (default 0; fallback steps up from it)")
    t.add_argument("--word-timestamps", action="store_true",
                   help="time each word from the alignment heads' cross-attention (words in JSON output)")
    t.add_argument("--no-timestamps", action="store_true", help="decode without timestamp tokens")
    t.add_argument("--max-len", type=_positive_int, default=None, metavar="CHARS",
                   help="split segments longer than this many characters (whisper-cli's -ml)")
    t.add_argument("--split-on-word", action="store_true", help="with --max-len: split between words only")
    t.add_argument("--condition-on-previous-text", type=_bool, default=None, metavar="True|False",
                   help="feed each window's text to the next (default: True; --preset fast: False)")
    t.add_argument("--vad", action=argparse.BooleanOptionalAction, default=None,
                   help="long-form decoding: speech found by voice activity detection, in chunks of "
                        "up to 30 s transcribed in parallel (default: on for audio over 30 s); "
                        "--no-vad: one pass over the whole file")
    t.add_argument("--prompt", "--initial-prompt", default=None, help="initial prompt: spelling, names, style")
    t.add_argument("--max-line-width", type=_positive_int, default=None, metavar="CHARS",
                   help="srt/vtt: break lines between words at this many characters (implies --word-timestamps)")
    t.add_argument("--max-line-count", type=_positive_int, default=None, metavar="N",
                   help="srt/vtt with --max-line-width: at most N lines per cue; cues then fill up instead of "
                        "following segments (implies --word-timestamps)")
    t.add_argument("--max-words-per-line", type=_positive_int, default=None, metavar="N",
                   help="srt/vtt without --max-line-width: at most N words per cue (implies --word-timestamps)")
    t.add_argument("--highlight-words", action="store_true",
                   help="srt/vtt: karaoke cues, each word underlined (<u>word</u>) as it is spoken "
                        "(implies --word-timestamps)")
    t.add_argument("--output-format", "-f", type=_format_list, default=None, metavar="FMT[,FMT]",
                   help=f"{','.join(FORMATS)} or all (default: txt)")
    t.add_argument("--whisper-cli-format", action="append", default=[], help=argparse.SUPPRESS)
    t.add_argument("--output-dir", "-o", default=None, metavar="DIR",
                   help="write DIR/NAME.FMT per file and format (default: print to stdout)")
    t.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no per-file summary")

    models_cli.add_parser(sub)
    batch_cli.add_parser(sub)

    c = sub.add_parser("convert", parents=[verbose], help="convert a CTranslate2 (faster-whisper) model to ggml")
    from .convert.__main__ import add_arguments as convert_arguments

    convert_arguments(c)

    i = sub.add_parser("info", parents=[verbose], help="version, whisper.cpp build, CPU features, decoders")
    i.add_argument("--json", action="store_true", help="machine-readable")
    return ap


# ---------------------------------------------------------------------------- inputs
class _Input(NamedTuple):
    path: Optional[str]   # None: stdin
    name: str             # for messages and JSON's "source"
    stem: str             # for output file names


def _expand_inputs(files: List[str]) -> Tuple[List[_Input], List[str], bool]:
    """(inputs, errors, several): directories become their audio files (recursive,
    sorted, hidden ones skipped), ``-`` stdin. ``several``: more than one input, or a
    directory (whose count should not change the output's shape)."""
    inputs: List[_Input] = []
    errors: List[str] = []
    any_dir = False
    for f in files:
        if f == STDIN:
            if any(i.path is None for i in inputs):
                raise UsageError("- (stdin) given twice")
            if sys.stdin is None or sys.stdin.isatty():
                raise UsageError("- reads audio from stdin, which is a terminal: pipe a file in (... - < talk.wav)")
            inputs.append(_Input(None, "<stdin>", "stdin"))
        elif os.path.isdir(f):
            any_dir = True
            found = []
            for root, dirs, names in os.walk(f):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found += [os.path.join(root, n) for n in names
                          if not n.startswith(".") and os.path.splitext(n)[1].lower() in AUDIO_EXTENSIONS]
            if not found:
                errors.append(f"{f}: no audio or video files in this directory")
            inputs += [_Input(p, p, Path(p).stem or "audio") for p in sorted(found)]
        else:
            inputs.append(_Input(f, f, Path(f).stem or "audio"))
    return inputs, errors, any_dir or len(inputs) > 1


def _load(inp: _Input):
    from .audio import load_audio

    if inp.path is not None:
        return load_audio(inp.path)
    from .compat import load_audio_file

    return load_audio_file(sys.stdin.buffer, name=inp.name)


# ---------------------------------------------------------------------------- transcribe
def _check_language(language: str) -> str:
    """The language code or name, checked here: whisper.cpp's own check logs a line first."""
    if language.lower() in ("auto", ""):
        return language
    from ._native import languages

    known = languages()
    lang = language.lower()
    if lang not in known and lang not in {v.lower() for v in known.values()}:
        raise UsageError(f"unknown language {language!r}; use a code like 'en', 'de', or 'auto'")
    return lang


def _decode_options(args) -> Dict[str, object]:
    options: Dict[str, object] = {"language": _check_language(args.language),
                                  "translate": args.translate or args.task == "translate"}
    if args.beam_size is not None:
        options["beam_size"] = args.beam_size
    if args.best_of is not None:
        options["best_of"] = args.best_of
    if args.temperature is not None:
        options["temperature"] = args.temperature
    if args.prompt:
        options["initial_prompt"] = args.prompt
    if args.word_timestamps or any(_subtitle_options(args).values()):
        options["word_timestamps"] = True  # the subtitle options are made of word times
    if args.no_timestamps:
        options["timestamps"] = False
    if args.max_len is not None:
        options["max_segment_length"] = args.max_len
    if args.split_on_word:
        if args.max_len is None:
            raise UsageError("--split-on-word splits what --max-len cuts: give --max-len CHARS too")
        options["split_on_word"] = True
    if args.condition_on_previous_text is not None:
        options["condition_on_previous_text"] = args.condition_on_previous_text
    if args.vad is not None:
        options["vad"] = args.vad
    return options


def _subtitle_options(args) -> Dict[str, object]:
    """The SRT/WebVTT options (output.render's keywords), as openai-whisper's CLI has them."""
    return {"max_line_width": args.max_line_width, "max_line_count": args.max_line_count,
            "highlight_words": args.highlight_words, "max_words_per_line": args.max_words_per_line}


def _warn_subtitle_options(args) -> None:
    if args.max_line_count and not args.max_line_width:
        print("warning: --max-line-count has no effect without --max-line-width", file=sys.stderr)
    if args.max_words_per_line and args.max_line_width:
        print("warning: --max-words-per-line has no effect with --max-line-width", file=sys.stderr)


def _output_formats(args) -> List[str]:
    formats = list(dict.fromkeys((args.output_format or []) + args.whisper_cli_format))
    return formats or ["txt"]


def _output_dir(args) -> Optional[Path]:
    value = args.output_dir
    if value is None:
        return None
    if value.lower() in _FORMAT_WORDS and not os.path.isdir(value):
        fmt = {"j": "json", "jf": "json", "json-full": "json"}.get(value.lower(), value.lower())
        hint = f"use -f {fmt}" if fmt in FORMATS or fmt == "all" else f"-f takes {','.join(FORMATS)} or all"
        raise UsageError(f"-o {value}: that is a format, but -o takes an output directory; {hint} "
                         f"(or -o ./{value} for a directory of that name)")
    return Path(value)


class _OutputNames:
    """DIR/STEM.FMT per input; a second input with the same stem gets STEM-2 (nothing overwritten)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.used: set = set()

    def stem(self, base: str) -> Path:
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
        if percent >= 100:  # chunks can finish together: show the end before the bar goes
            self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _isatty(stream) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):
        return False


def _stdout_closed() -> bool:
    """True once the reader of stdout has gone (``| head`` exited): a pipe's write end
    then polls as POLLERR. Files and terminals never do."""
    try:
        import select

        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _fd, ev in poller.poll(0))
    except (AttributeError, ValueError, OSError):  # no poll (Windows), no real stdout
        return False


def _silence_native_log() -> None:
    # whisper.cpp logs the abort of a cancelled run as an error: not news after Ctrl-C.
    logging.getLogger("whisperx_native.native").disabled = True


#: After a cancel, how long the worker may take to stop before the process leaves without it.
_STOP_GRACE_S = 0.25


def _stop(worker: threading.Thread, token, code: int) -> None:
    """Cancel the run and give the worker a moment to stop; if it is still in whisper.cpp
    after that, leave the process now with ``code``.

    whisper.cpp (1.8.5) checks the abort flag only after a whole encoder pass or decoder
    step: a fraction of a second for tiny, seconds for medium on a few cores. Leaving
    without the worker is safe: outputs are written by the main thread, atomically,
    after a run has finished, so nothing of this file exists to be left half written."""
    _silence_native_log()
    token.cancel()
    try:
        worker.join(_STOP_GRACE_S)
    except KeyboardInterrupt:  # a second Ctrl-C: leave now
        pass
    if worker.is_alive():
        if code == EXIT_PIPE:
            _quiet_closed_pipe()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def _run_watched(call, token, watch_stdout: bool):
    """``call()`` on a worker thread while this (main) thread stays where Python sees
    Ctrl-C at once: the native run holds no GIL, but a signal handler only runs when
    the main thread executes Python. On Ctrl-C or a closed stdout the run is cancelled
    and the command ends (see ``_stop``)."""
    box: Dict[str, object] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:  # raised in the main thread below
            box["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=work, name="whisperx_native-cli", daemon=True)
    try:
        worker.start()
        while not done.wait(_POLL_S):
            if watch_stdout and _stdout_closed():
                _stop(worker, token, EXIT_PIPE)
                raise BrokenPipeError(errno.EPIPE, "stdout closed")
    except KeyboardInterrupt:
        _stop(worker, token, EXIT_INTERRUPTED)
        raise
    worker.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]


def _transcribe_one(model, inp: _Input, args, options, plan: "_Plan") -> None:
    from .audio import SAMPLE_RATE
    from .cancel import CancelToken
    from .output import json_line, render, txt_line, write

    from .filestream import for_transcribe

    if inp.path is not None:  # a long file goes by its path: transcribe reads it block by block
        audio, seconds = for_transcribe(inp.path)
    else:
        audio = _load(inp)
        seconds = audio.size / SAMPLE_RATE
    to_stdout = plan.names is None
    fmt = plan.formats[0]
    if to_stdout and plan.several and fmt == "txt":
        sys.stdout.write(f"{'' if plan.first else chr(10)}==> {inp.name} <==\n")
        sys.stdout.flush()
    plan.first = False
    stream = to_stdout and fmt == "txt" and _isatty(sys.stdout)  # as whisper-cli: text as it comes

    def print_segment(seg) -> None:
        sys.stdout.write(txt_line(seg.text))
        sys.stdout.flush()

    progress = None
    if not args.quiet and not stream and seconds >= PROGRESS_MIN_SECONDS and _isatty(sys.stderr):
        progress = _Progress(inp.name if inp.path is None else Path(inp.path).name)
    token = CancelToken()
    try:
        result = _run_watched(
            lambda: model.transcribe(audio, preset=args.preset, progress_callback=progress,
                                     segment_callback=print_segment if stream else None, cancel_token=token,
                                     **options),
            token, watch_stdout=to_stdout)
    finally:
        if progress is not None:
            progress.close()
    written = []
    if to_stdout:
        if fmt == "json" and plan.several:
            sys.stdout.write(json_line(result, source=inp.name))
        elif not stream:
            sys.stdout.write(render(result, fmt, source=inp.name, **_subtitle_options(args)))
        sys.stdout.flush()
    else:
        stem = plan.names.stem(inp.stem)
        for f in plan.formats:
            written.append(str(write(result, f, Path(f"{stem}.{f}"), source=inp.name, **_subtitle_options(args))))
    if not args.quiet:
        t = result.timings
        lang = result.language or "?"
        if result.language_probability is not None:
            lang += f" ({result.language_probability:.0%})"
        out = f" → {', '.join(written)}" if written else ""
        threads = t.get("n_threads")
        threads = f", {threads} thread{'s' if threads != 1 else ''}" if threads else ""
        seconds = t.get("audio_seconds", seconds)
        print(f"{inp.name}: {seconds:.1f} s audio, {lang}, {t.get('total_ms', 0.0) / 1000:.2f} s{threads}, "
              f"real-time factor {t.get('real_time_factor', 0.0):.3f}{out}", file=sys.stderr)


class _Plan:
    """Where the results go: a directory (``names``) or stdout, in which formats."""

    def __init__(self, formats: List[str], names: Optional[_OutputNames], several: bool) -> None:
        self.formats = formats
        self.names = names
        self.several = several
        self.first = True


def _transcribe(args) -> int:
    from .model import Model

    options = _decode_options(args)
    _warn_subtitle_options(args)
    formats = _output_formats(args)
    out_dir = _output_dir(args)
    inputs, failures, several = _expand_inputs(args.files)
    if out_dir is None:
        if len(formats) > 1:
            raise UsageError(f"stdout takes one format; for {','.join(formats)} give -o DIR "
                             "(each format to its own file)")
        if several and formats[0] in _DOCUMENT_FORMATS:
            raise UsageError(f"{formats[0]} of several files on stdout would run together into one invalid "
                             f"document: give -o DIR (one {formats[0]} file per input)")
    for message in failures:
        _report(message, False)
    if not inputs:
        return EXIT_FILE_FAILED
    names = None
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create output directory {out_dir}: {exc.strerror or exc}") from None
        names = _OutputNames(out_dir)
    plan = _Plan(formats, names, several)
    failed = len(failures)
    total = len(inputs) + len(failures)
    with Model(args.model, n_threads=args.threads, adapt_threads=args.adapt_threads) as model:
        for inp in inputs:
            if names is None and _stdout_closed():
                raise BrokenPipeError(errno.EPIPE, "stdout closed")
            try:
                _transcribe_one(model, inp, args, options, plan)
            except (BrokenPipeError, KeyboardInterrupt):
                raise
            except Cancelled:  # only this command cancels; a stray one is this file's failure
                failed += 1
                _report(f"{inp.name}: cancelled", args.verbose)
            except AudioError as exc:  # names the file already
                failed += 1
                _report(str(exc), args.verbose)
            except (ValueError, TypeError) as exc:  # bad options: every file would fail the same way
                raise UsageError(str(exc)) from exc
            except Exception as exc:  # this file's problem, whatever it is: go on with the next
                failed += 1
                _report(f"{inp.name}: {exc}", args.verbose)
    if failed and total > 1 and not args.quiet:
        print(f"{failed} of {total} files failed", file=sys.stderr)
    return EXIT_FILE_FAILED if failed else EXIT_OK


def _report(message: str, verbose: bool) -> None:
    if verbose:
        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------- other commands
def _convert(args) -> int:
    from .convert import convert_ct2

    out = convert_ct2(args.src, args.dst, overwrite=args.overwrite)
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


def _quiet_closed_pipe() -> None:
    """stdout's reader is gone: send what is still buffered (and any last words) nowhere,
    so the interpreter's exit does not complain about it."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (AttributeError, ValueError, OSError):
            pass


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in ("--verbose", "-v") for a in argv)
    try:
        try:
            argv = _translate_argv(argv)
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        args = _parser().parse_args(argv)
        verbose = args.verbose
        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")
        if not verbose:
            logging.getLogger("whisperx_native.native").setLevel(logging.ERROR)
        from .batch import cli as batch_cli

        commands = {"transcribe": _transcribe, "convert": _convert, "info": _info, "models": models_cli.run,
                    "batch": batch_cli.run}
        code = commands[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except KeyboardInterrupt:  # Ctrl-C: quietly, as other tools do (the terminal shows ^C)
        _silence_native_log()
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout closed early (| head): stop at once and quietly, as cat does
        _quiet_closed_pipe()
        return EXIT_PIPE
    except (UsageError, WhisperError, OSError) as exc:
        _report(str(exc), verbose)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
