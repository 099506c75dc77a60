"""faster-whisper's habits in ``Model.transcribe``: its keyword names, binary file objects.

Code written for faster-whisper ports by changing the import and the model::

    model.transcribe(audio, word_timestamps=True, vad_filter=True, task="translate",
                     vad_parameters={"min_silence_duration_ms": 500}, hotwords="kubectl",
                     without_timestamps=False, condition_on_previous_text=False, log_progress=True)

``translate_options`` turns these into fields of :class:`~whisperx_native.options.DecodeOptions`
(``options.resolve_options`` calls it first); ``log_progress`` becomes a progress callback
(:func:`progress_logger`). faster-whisper options without an equivalent here are accepted
at faster-whisper's default value and refused, naming the option, at any other. What does
not port: ``transcribe`` returns one ``Result`` (``.segments``, ``.language``,
``.language_probability``), not a ``(segments, info)`` pair.

``load_audio_file`` decodes a binary file object (``open(path, "rb")``, ``io.BytesIO``,
``sys.stdin.buffer``) as faster-whisper's ``decode_audio`` does.
"""

from __future__ import annotations

import io
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from .errors import AudioError, OptionError, OptionTypeError

__all__ = ["FASTER_WHISPER_VAD_KEYS", "load_audio_file", "progress_logger", "translate_options"]

log = logging.getLogger("whisperx_native")

#: faster-whisper's VadOptions names → our VAD's (``_native.VadContext.segments``) keywords.
FASTER_WHISPER_VAD_KEYS = {
    "threshold": "threshold",
    "min_speech_duration_ms": "min_speech_ms",
    "min_silence_duration_ms": "min_silence_ms",
    "max_speech_duration_s": "max_speech_s",
    "speech_pad_ms": "speech_pad_ms",
}

#: faster-whisper options with no equivalent in whisper.cpp: fine at these (its defaults).
_DEFAULT_ONLY: Dict[str, Any] = {
    "length_penalty": 1.0,                # CTranslate2's length ** 1: our default (None) normalisation
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "prompt_reset_on_temperature": 0.5,
    "suppress_tokens": [-1],
    "max_initial_timestamp": 1.0,
    "prepend_punctuations": "\"'“¿([{-",
    "append_punctuations": "\"'.。,，!！?？:：”)]}、",
    "multilingual": False,
    "chunk_length": None,
    "clip_timestamps": "0",
    "hallucination_silence_threshold": None,
    "language_detection_threshold": 0.5,
    "language_detection_segments": 1,
    "max_new_tokens": None,
    "batch_size": None,
}

# word_timestamps is a field of its own (DTW on the alignment heads), the same name as here.
_RENAMED = {"log_prob_threshold": "logprob_threshold", "vad_filter": "vad"}


def translate_options(overrides: Dict[str, Any]) -> Dict[str, Any]:
    """faster-whisper keywords in ``overrides`` → DecodeOptions fields (a new dict; the
    same dict when there is nothing to translate). Also: ``max_segment_length`` turns
    on the token timestamps whisper.cpp needs to cut segments."""
    if not overrides:
        return overrides
    known = set(_RENAMED) | set(_DEFAULT_ONLY) | {"task", "vad_parameters", "without_timestamps", "hotwords",
                                                  "log_progress", "max_segment_length"}
    temp = overrides.get("temperature")
    if not known & set(overrides) and not isinstance(temp, (list, tuple)):
        return overrides
    out = dict(overrides)
    out.pop("log_progress", None)  # a callback, not an option: see progress_logger
    for name, default in _DEFAULT_ONLY.items():
        if name in out:
            value = out.pop(name)
            if not _same(value, default):
                raise OptionError(f"faster-whisper's {name}={value!r} has no equivalent in whisper.cpp "
                                  f"(only its default, {default!r}, is accepted)")
    for fw, ours in _RENAMED.items():
        if fw in out:
            _set(out, ours, out.pop(fw), fw)
    if "task" in out:
        task = out.pop("task")
        if task not in ("transcribe", "translate"):
            raise (OptionTypeError if not isinstance(task, str) else OptionError)(
                f"task must be 'transcribe' or 'translate', got {task!r}")
        _set(out, "translate", task == "translate", "task")
    if "without_timestamps" in out:
        value = out.pop("without_timestamps")
        if not isinstance(value, bool):
            raise OptionTypeError(f"without_timestamps must be a bool, got {type(value).__name__}")
        _set(out, "timestamps", not value, "without_timestamps")
    if "hotwords" in out:
        hot = out.pop("hotwords")
        if hot is not None:
            if not isinstance(hot, str):
                raise OptionTypeError(f"hotwords must be a str, got {type(hot).__name__}")
            prompt = out.get("initial_prompt")
            out["initial_prompt"] = f"{hot.strip()} {prompt}" if prompt else hot.strip()
    if "vad_parameters" in out:
        out["vad_parameters"] = _vad_parameters(out["vad_parameters"])
    if isinstance(temp, (list, tuple)):
        out.update(_temperatures(temp))
    if out.get("max_segment_length"):
        if out.get("token_timestamps") is False:
            raise OptionError("max_segment_length needs token timestamps (whisper.cpp cuts segments by them); "
                              "leave token_timestamps on")
        out["token_timestamps"] = True
    return out


def _same(value, default) -> bool:
    try:
        return bool(value == default) or (isinstance(value, (list, tuple)) and list(value) == default)
    except Exception:
        return False


def _set(out: Dict[str, Any], ours: str, value, fw: str) -> None:
    if ours in out and out[ours] != value:
        raise OptionError(f"{fw}={value!r} and {ours}={out[ours]!r} disagree; give one of them")
    out[ours] = value


def _vad_parameters(params) -> tuple:
    """faster-whisper's vad_parameters (a dict or a VadOptions object) → ((our name, value), ...)."""
    if params is None:
        return ()
    if not isinstance(params, dict):
        if hasattr(params, "__dict__") or hasattr(params, "_asdict"):
            params = params._asdict() if hasattr(params, "_asdict") else dict(vars(params))
        else:
            raise OptionTypeError(f"vad_parameters must be a dict, got {type(params).__name__}")
    pairs = []
    for key, value in params.items():
        if key not in FASTER_WHISPER_VAD_KEYS:
            if key == "neg_threshold" and value is None:
                continue  # faster-whisper's default: threshold - 0.15, as whisper.cpp's VAD does
            raise OptionError(f"vad_parameters: {key!r} is not supported; the VAD takes "
                              f"{', '.join(FASTER_WHISPER_VAD_KEYS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionTypeError(f"vad_parameters[{key!r}] must be a number, got {value!r}")
        if math.isnan(value) or (math.isinf(value) and key != "max_speech_duration_s"):
            raise OptionError(f"vad_parameters[{key!r}] must be finite, got {value!r}")
        if value < 0 or (key == "threshold" and value > 1):
            raise OptionError(f"vad_parameters[{key!r}] out of range: {value!r}")
        pairs.append((FASTER_WHISPER_VAD_KEYS[key], float(value) if key in ("threshold", "max_speech_duration_s")
                      else int(value)))
    return tuple(pairs)


def _temperatures(temps) -> Dict[str, float]:
    """faster-whisper's temperature list (0.0, 0.2, ..., 1.0) → first temperature and step."""
    try:
        ts = [float(t) for t in temps]
    except (TypeError, ValueError):
        raise OptionTypeError(f"temperature must be a number or a list of numbers, got {temps!r}") from None
    if not ts:
        raise OptionError("temperature: an empty list")
    if len(ts) == 1:
        return {"temperature": ts[0], "temperature_increment": 0.0}
    step = ts[1] - ts[0]
    evenly = all(abs((b - a) - step) < 1e-6 for a, b in zip(ts, ts[1:]))
    if step <= 0 or not evenly or abs(ts[-1] - 1.0) > 1e-6:
        raise OptionError(f"temperature {temps!r}: whisper.cpp falls back in even steps up to 1.0; "
                          "give a list like (0.0, 0.2, ..., 1.0), or temperature= and temperature_increment=")
    return {"temperature": ts[0], "temperature_increment": step}


def progress_logger(options: Dict[str, Any],
                    callback: Optional[Callable[[int], None]]) -> Optional[Callable[[int], None]]:
    """Take faster-whisper's ``log_progress`` out of ``options``; when true, a progress
    callback that logs (INFO, logger ``whisperx_native``) and then calls ``callback``."""
    if not options.get("log_progress"):
        options.pop("log_progress", None)
        return callback
    options.pop("log_progress")
    last = [-1]

    def log_and_call(percent: int) -> None:
        if percent // 10 != last[0] // 10 or percent == 100 and last[0] != 100:
            log.info("transcribing: %d%%", percent)
        last[0] = percent
        if callback is not None:
            callback(percent)

    return log_and_call


def load_audio_file(fileobj, name: Optional[str] = None):
    """Decode a binary file object (read to its end) as :func:`whisperx_native.load_audio`
    decodes a file: 16 kHz mono float32. ``name`` (default: the object's ``name``) is
    what errors say."""
    from .audio import load_audio

    where = name or getattr(fileobj, "name", None)
    where = where if isinstance(where, str) else f"<{type(fileobj).__name__}>"
    if isinstance(fileobj, io.TextIOBase):
        raise AudioError(f"{where}: a text stream; open the file in binary mode ('rb')")
    try:
        data = fileobj.read()
    except (OSError, ValueError) as exc:
        raise AudioError(f"{where}: cannot read: {exc}") from None
    if isinstance(data, str):
        raise AudioError(f"{where}: a text stream; open the file in binary mode ('rb')")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise AudioError(f"{where}: read() gave {type(data).__name__}, not bytes")
    if not len(data):
        raise AudioError(f"{where}: no data (empty input)")
    suffix = Path(where).suffix if not where.startswith("<") else ""
    # libsndfile and FFmpeg both read files best: container probing, seeking, long inputs.
    with tempfile.TemporaryDirectory(prefix="whisperx_native-") as tmp:
        path = os.path.join(tmp, "input" + (suffix if len(suffix) <= 8 else ""))
        with open(path, "wb") as f:
            f.write(data)
        del data
        try:
            return load_audio(path)
        except AudioError as exc:
            raise AudioError(str(exc).replace(path, where)) from None
