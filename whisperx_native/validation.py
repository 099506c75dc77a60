"""One gate for every option before it reaches native code.

whisper.cpp trusts its parameters: a NaN temperature with fallback on leaves its
temperature list empty and it reads past the end (SIGSEGV); a tiny positive
increment makes the list grow without end; a long initial prompt without breaks
overflows the stack of its regex tokenizer, and a long run of one character class
takes cubic time in its greedy token matcher; values past int32 raise
``OverflowError`` in the Cython layer. This module checks types, ranges and
finiteness of every field of :class:`~whisperx_native.options.DecodeOptions` —
generically by the field's annotation, so a field added later is checked too —
and of the other arguments of the public entry points, raising the package's own
:class:`~whisperx_native.errors.OptionError` / :class:`OptionTypeError`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import operator
import os
import typing
from typing import Any, Callable, Dict, Optional, Tuple

from .errors import OptionError, OptionTypeError

__all__ = [
    "validate_options", "bound_prompt", "check_int", "check_float", "check_bool", "check_str",
    "check_path", "check_callable", "clamp_threads", "PROMPT_MAX_BYTES", "PROMPT_MAX_RUN",
]

INT32_MAX = 2**31 - 1
#: Whisper decodes with at most n_text_ctx / 2 = 224 prompt tokens. English averages
#: about 4.5 bytes per token, CJK about 2: the last 1200 bytes cover what is used.
PROMPT_MAX_BYTES = 1200
#: A decoder prefix shares the prompt's room: at most n_text_ctx / 2 - 1 tokens (whisper.cpp
#: refuses more, vendor/patches/0019).
MAX_PREFIX_TOKENS = 223
#: Longest run of one tokenizer character class (letters, digits, spaces, anything
#: else — every non-ASCII byte is "anything else" to whisper.cpp's std::regex) kept
#: in one piece. The greedy matcher is cubic in a run's length and the regex recurses
#: once per byte: 128 bytes cost microseconds; 30000 overflowed the stack.
PROMPT_MAX_RUN = 128
#: Longest whitespace run kept (longer ones become one space: they carry no meaning
#: for the decoder, and 10000 spaces took whisper.cpp 12 s to tokenize).
PROMPT_MAX_SPACE_RUN = 4
#: Bound on the float thresholds: far past any meaningful value, far from float32's limits.
FLOAT_LIMIT = 1e6
#: Longest audio one call takes (audio.MAX_SECONDS), in ms: bounds offset_ms and duration_ms.
MAX_MS = 8 * 3600 * 1000
MAX_DECODERS = 8  # WHISPER_MAX_DECODERS
N_AUDIO_CTX = 1500
TEMPERATURE_MAX = 1.0
#: Smallest non-zero temperature step: whisper.cpp tries t, t + step, ... up to 1.0, so
#: this bounds its fallback list to 21 temperatures, each a full decode of the window
#: (1e-30 made the list grow without end; faster-whisper's step is 0.2).
MIN_TEMPERATURE_INCREMENT = 0.05


def _name(where: str, field: str) -> str:
    return f"{where}{field}" if where else field


def check_bool(value: Any, field: str) -> bool:
    """A bool (numpy's too, and the ints 0 and 1)."""
    if isinstance(value, bool):
        return value
    try:
        import numpy as np

        if isinstance(value, np.bool_):
            return bool(value)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    raise OptionTypeError(f"{field} must be True or False, got {_show(value)}")


def check_int(value: Any, field: str, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
    """An integer (not a bool, not a float) within [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        # numpy integers are numbers.Integral; floats, strings, None are not
        raise OptionTypeError(f"{field} must be an integer, got {_show(value)}")
    n = operator.index(value)
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        rng = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
        raise OptionError(f"{field} must be in {rng}, got {n}")
    return n


def check_float(value: Any, field: str, lo: float = -FLOAT_LIMIT, hi: float = FLOAT_LIMIT) -> float:
    """A finite real number within [lo, hi] (ints are accepted)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise OptionTypeError(f"{field} must be a number, got {_show(value)}")
    try:
        x = float(value)
    except (OverflowError, ValueError):
        raise OptionError(f"{field} must be a finite number in {lo}..{hi}, got {_show(value)}") from None
    if not math.isfinite(x):
        raise OptionError(f"{field} must be a finite number, got {x}")
    if not lo <= x <= hi:
        raise OptionError(f"{field} must be in {lo}..{hi}, got {x}")
    return x


def check_str(value: Any, field: str, max_chars: Optional[int] = None) -> str:
    """A str whisper.cpp can take: encodable as UTF-8 (no lone surrogates), no NUL."""
    if not isinstance(value, str):
        raise OptionTypeError(f"{field} must be a string, got {_show(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise OptionError(f"{field} cannot be encoded as UTF-8 (character {exc.start}: "
                          f"{value[exc.start:exc.end]!a}, a lone surrogate?)") from None
    if "\x00" in value:
        raise OptionError(f"{field} contains a NUL character")
    if max_chars is not None and len(value) > max_chars:
        raise OptionError(f"{field} is {len(value)} characters long (at most {max_chars})")
    return value


def check_path(value: Any, field: str) -> str:
    """A str / PathLike / bytes path the OS can take (no NUL); returned as str."""
    try:
        raw = os.fspath(value)
    except TypeError:
        raise OptionTypeError(f"{field} must be a file path, got {_show(value)}") from None
    try:
        b = os.fsencode(raw)
    except UnicodeEncodeError:
        raise OptionError(f"{field} cannot be encoded as a file name: {raw!a}") from None
    if b"\x00" in b or not b:
        raise OptionError(f"{field} is not a usable file name: {raw!a}")
    return os.fsdecode(b)


def check_callable(value: Any, field: str) -> None:
    if value is not None and not callable(value):
        raise OptionTypeError(f"{field} must be callable or None, got {_show(value)}")


def clamp_threads(value: Any, field: str = "n_threads", allow_zero: bool = False) -> int:
    """A thread count: an int >= 1 (0 too with ``allow_zero``: "the default"), never
    more than the cores this process may use (more only makes whisper.cpp's spinning
    barriers wait; 1000 threads hung the VAD)."""
    from .threads import clamp

    return clamp(check_int(value, field, 0 if allow_zero else 1, None))


def _show(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = object.__repr__(value)
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


# ---------------------------------------------------------------------------- prompt
def _char_class(c: str) -> int:
    """whisper.cpp's regex classes in the C locale: 0 space, 1 letter, 2 digit, 3 other."""
    if c in " \t\n\v\f\r":
        return 0
    if c.isascii():
        if c.isalpha():
            return 1
        if c.isdigit():
            return 2
    return 3


def bound_prompt(prompt: str, max_bytes: int = PROMPT_MAX_BYTES, max_run: int = PROMPT_MAX_RUN) -> str:
    """``prompt`` made safe and fast for whisper.cpp's tokenizer, in linear time.

    Keeps the last ``max_bytes`` bytes (whisper conditions on the last 224 tokens
    only, and keeps the end of a long prompt too), shortens whitespace runs to one
    space, and breaks runs of one character class longer than ``max_run`` bytes with
    a space. Ordinary prompts come back unchanged."""
    data = prompt.encode("utf-8")
    # Truncate only past the room the breaks below may add: a bounded prompt passes unchanged.
    if len(data) > max_bytes + max_bytes // max_run + 2:
        cut = len(data) - max_bytes
        while cut < len(data) and (data[cut] & 0xC0) == 0x80:  # not inside a character
            cut += 1
        prompt = data[cut:].decode("utf-8")
    out = []
    run_cls, run_len, run_start = -1, 0, 0
    for c in prompt:
        cls = _char_class(c)
        n = len(c.encode("utf-8")) if cls == 3 and not c.isascii() else 1
        if cls != run_cls:
            if run_cls == 0 and run_len > PROMPT_MAX_SPACE_RUN:
                del out[run_start:]
                out.append(" ")
            run_cls, run_len, run_start = cls, 0, len(out)
        elif cls != 0 and run_len + n > max_run:
            out.append(" ")
            run_len, run_start = 0, len(out)
        out.append(c)
        run_len += n
    if run_cls == 0 and run_len > PROMPT_MAX_SPACE_RUN:
        del out[run_start:]
        out.append(" ")
    return "".join(out)


# ---------------------------------------------------------------------------- DecodeOptions
def _ints() -> Dict[str, Tuple[int, int]]:
    return {
        "n_threads": (0, INT32_MAX),        # 0: the model's; clamped to the cores below
        "decode_threads": (0, INT32_MAX),   # clamped to n_threads below
        "beam_size": (1, MAX_DECODERS),
        "best_of": (1, MAX_DECODERS),
        "max_segment_length": (0, 1_000_000),
        "max_tokens": (0, 1_000_000),
        "audio_ctx": (0, N_AUDIO_CTX),
        "offset_ms": (0, MAX_MS),
        "duration_ms": (0, MAX_MS),
    }


_FLOATS = {
    "temperature": (0.0, TEMPERATURE_MAX),
    "temperature_increment": (0.0, 1.0),
    "no_speech_threshold": (-FLOAT_LIMIT, FLOAT_LIMIT),
    "patience": (1.0, MAX_DECODERS),          # beam_size x patience hypotheses, at most 8 kept
    "length_penalty": (0.0, 10.0),
    "compression_ratio_threshold": (0.0, FLOAT_LIMIT),
    "max_tokens_per_second": (0.0, FLOAT_LIMIT),
}

_STR_LIMITS = {"language": 32}


_HINTS: Dict[type, Dict[str, Any]] = {}


def _hints(cls) -> Dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = _read_hints(cls)
    return hints


def _read_hints(cls) -> Dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # pragma: no cover - an annotation that cannot be evaluated
        return {f.name: f.type for f in dataclasses.fields(cls)}


def _kind(tp: Any) -> Tuple[str, bool]:
    """('bool'|'int'|'float'|'str'|'path'|'other', optional) of an annotation."""
    optional = False
    args = typing.get_args(tp)
    if typing.get_origin(tp) is typing.Union:
        rest = [a for a in args if a is not type(None)]
        optional = len(rest) < len(args)
        if len(rest) == 1:
            tp = rest[0]
        else:
            return "other", optional
    if tp is bool:
        return "bool", optional
    if tp is int:
        return "int", optional
    if tp is float:
        return "float", optional
    if tp is str:
        return "str", optional
    return "other", optional


def check_prefix(prefix: Any) -> Any:
    """``DecodeOptions.prefix``: None, a text (bounded as a prompt is), or timed text
    ``((start_s, end_s, text), ...)`` with 0 <= start <= end <= 30 s in order."""
    if prefix is None or isinstance(prefix, str):
        return bound_prompt(check_str(prefix, "prefix")) if prefix else None
    if not isinstance(prefix, (tuple, list)):
        raise OptionTypeError(f"prefix must be a text or a sequence of (start_s, end_s, text), got {_show(prefix)}")
    out, last = [], 0.0
    for item in prefix:
        if not isinstance(item, (tuple, list)) or len(item) != 3:
            raise OptionTypeError(f"prefix items must be (start_s, end_s, text), got {_show(item)}")
        t0 = check_float(item[0], "prefix start", 0.0, 30.0)
        t1 = check_float(item[1], "prefix end", 0.0, 30.0)
        if not last <= t0 <= t1:
            raise OptionError(f"prefix times must be in order inside the first window, got {t0} .. {t1} after {last}")
        out.append((t0, t1, bound_prompt(check_str(item[2], "prefix text"))))
        last = t1
    if len(out) > MAX_PREFIX_TOKENS // 3:
        raise OptionError(f"prefix may hold at most {MAX_PREFIX_TOKENS // 3} timed texts, got {len(out)}")
    out = tuple(out)
    return prefix if out == prefix else out


def validate_options(opts):
    """Check every field of a DecodeOptions; return it with values normalised (bools
    as bool, numbers as int/float, threads clamped to the cores, the initial prompt
    bounded). Raises OptionError / OptionTypeError naming the field."""
    changes: Dict[str, Any] = {}
    ints = _ints()
    for name, tp in _hints(type(opts)).items():
        if name.startswith("_") or not hasattr(opts, name):
            continue
        value = getattr(opts, name)
        kind, optional = _kind(tp)
        if value is None:
            if optional:
                continue
            raise OptionTypeError(f"{name} must not be None")
        if name == "vad_model":
            new: Any = check_path(value, name)
        elif kind == "bool":
            new = check_bool(value, name)
        elif kind == "int":
            lo, hi = ints.get(name, (0, INT32_MAX))
            new = check_int(value, name, lo, hi)
        elif kind == "float":
            lo, hi = _FLOATS.get(name, (-FLOAT_LIMIT, FLOAT_LIMIT))
            new = check_float(value, name, lo, hi)
        elif kind == "str":
            new = check_str(value, name, _STR_LIMITS.get(name))
        else:
            continue
        if new is not value:
            changes[name] = new
    if changes:
        opts = opts.replace(**changes)
    changes = {}
    inc = opts.temperature_increment
    if 0.0 < inc < MIN_TEMPERATURE_INCREMENT:
        raise OptionError(f"temperature_increment must be 0 (no fallback) or at least "
                          f"{MIN_TEMPERATURE_INCREMENT}, got {inc}")
    if opts.n_threads and opts.decode_threads > opts.n_threads:
        raise OptionError(f"decode_threads must be 0 (= n_threads) .. n_threads ({opts.n_threads}), "
                          f"got {opts.decode_threads}")
    n = clamp_threads(opts.n_threads, allow_zero=True)  # 0: the model's own count (checked there)
    if n != opts.n_threads:  # more threads than cores: both counts clamped alike
        changes["n_threads"] = n
        changes["decode_threads"] = min(opts.decode_threads, n)
    if opts.prefix is not None:
        prefix = check_prefix(opts.prefix)
        if prefix is not opts.prefix:
            changes["prefix"] = prefix
    if opts.initial_prompt is not None:
        prompt = bound_prompt(opts.initial_prompt) if opts.initial_prompt else None
        if prompt != opts.initial_prompt:
            changes["initial_prompt"] = prompt
    if changes:
        opts = opts.replace(**changes)
    return opts


def native_options(opts):
    """The check ``State.full`` makes itself: a DecodeOptions, validated, with a thread
    count and a language whisper.cpp knows (the native layer takes no unchecked input)."""
    from .options import DecodeOptions
    from .threads import default_threads

    if not isinstance(opts, DecodeOptions):
        raise OptionTypeError(f"opts must be a whisperx_native.DecodeOptions, got {_show(opts)}")
    opts = validate_options(opts)
    if not opts.n_threads:
        opts = opts.replace(n_threads=default_threads())
    if opts.decode_threads > opts.n_threads:
        raise OptionError(f"decode_threads must be 0 (= n_threads) .. n_threads ({opts.n_threads}), "
                          f"got {opts.decode_threads}")
    if opts.language not in (None, "", "auto"):
        from ._native import lang_id

        if lang_id(opts.language) < 0:
            raise OptionError(f"unknown language {opts.language!r}; use a code like 'en', 'de', or 'auto'")
    return opts


def check_call(progress_callback: Any = None, segment_callback: Any = None,
               cancel_token: Any = None, preset: Any = None) -> None:
    """The non-option arguments of ``Model.transcribe``."""
    check_callable(progress_callback, "progress_callback")
    check_callable(segment_callback, "segment_callback")
    if cancel_token is not None:
        from .cancel import CancelToken

        if not isinstance(cancel_token, CancelToken):
            raise OptionTypeError(f"cancel_token must be a whisperx_native.CancelToken, got {_show(cancel_token)}")
    if preset is not None and not isinstance(preset, str):
        raise OptionTypeError(f"preset must be a string ('accurate' or 'fast'), got {_show(preset)}")
