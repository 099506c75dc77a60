"""Fuzz cases for tests/test_fuzz.py, and the worker process that runs them.

Every case has an id, ``<category>-<index>`` (``model-0017``), and is generated from
that id alone (``random.Random(id)``), so a failure reproduces from its id:

    python tests/_fuzz_cases.py model-0017 [more ids]     # run in this process, print outcomes
    WHISPERX_NATIVE_FUZZ_IDS=model-0017 pytest tests/test_fuzz.py

Categories: ``model`` (mutated whisper files: header, vocabulary, tensor table, data,
truncations), ``vad`` (mutated Silero files), ``audio`` (mutated WAV/FLAC/OGG/MP3/M4A
headers, truncations, special files), ``options`` (option values: NaN, ±inf, huge,
negative, wrong types, surrogates, long prompts), ``api`` (arrays, Model/VadContext/
State arguments), ``ring`` (RingBuffer), ``manager`` (WhisperManager), ``cancel``
(cancel races around the state pool).

An outcome is ``ok`` (no exception), ``refused`` (an exception of the package:
a WhisperError), ``foreign`` (any other exception), ``runaway`` (MemoryError: the
worker runs under an address-space limit), or ``wrong`` (a case's own check failed,
e.g. a cancel leaked into the next call). The parent (test_fuzz.py) adds ``crash``
(the worker died by a signal) and ``hang`` (no answer within the time limit).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np

MARK = "@@FUZZ "
CATEGORIES = ("model", "vad", "audio", "options", "api", "ring", "manager", "cancel")

_INT_EDGES = [0, 1, -1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 65, 127, 128, 129, 255, 256, 512, 1000,
              1024, 4096, 65535, 65536, 1 << 24, 2**31 - 1, -2**31, -2, 1 << 20]


def _int_value(rng: random.Random, orig: int) -> int:
    r = rng.random()
    if r < 0.55:
        v = rng.choice(_INT_EDGES)
    elif r < 0.8:
        v = orig + rng.choice([-2, -1, 1, 2, orig, -orig // 2 or 1])
    else:
        v = rng.randrange(-2**31, 2**31)
    v = max(-2**31, min(2**31 - 1, v))
    return v if v != orig else (orig + 1 if orig < 2**31 - 1 else 0)


# --------------------------------------------------------------------------- file layouts
class WhisperLayout:
    """Offsets of the fields of a whisper ggml file (for targeted mutations)."""

    def __init__(self, path: Path) -> None:
        from whisperx_native.models.ggml_file import validate

        self.path = path
        info = validate(path)
        self.size = info.file_size
        self.fields = [(4 + 4 * i, "hparam") for i in range(11)] + [(48, "n_mel"), (52, "n_fft")]
        n_mel = info.hparams.n_mels
        voc = 56 + 4 * n_mel * 201
        self.fields.append((voc, "n_tokens"))
        self.token_fields = []
        with open(path, "rb") as f:
            f.seek(voc + 4)
            buf = f.read(info.tensors[0].offset - voc)  # vocabulary and first tensor header
        pos = 0
        for _ in range(info.n_tokens):
            (n,) = struct.unpack_from("<I", buf, pos)
            self.token_fields.append(voc + 4 + pos)
            pos += 4 + n
        self.filters = (56, 4 * n_mel * 201)
        self.tensors = []  # (header offset, n_dims, name length, data offset, nbytes)
        for t in info.tensors:
            head = t.offset - len(t.name) - 4 * len(t.ne) - 12
            self.tensors.append((head, len(t.ne), len(t.name), t.offset, t.nbytes))


class VadLayout:
    def __init__(self, path: Path) -> None:
        data = path.read_bytes()
        self.path, self.size = path, len(data)
        (n,) = struct.unpack_from("<i", data, 4)
        self.fields = [(4, "type_len")]
        off = 8 + n
        self.type_span = (8, n)
        self.fields += [(off + 4 * i, f"hp{i}") for i in range(6)]  # version x3, window, context, n_layers
        off += 24
        self.fields += [(off + 4 * i, f"layer{i // 3}.{i % 3}") for i in range(12)]
        off += 48
        self.fields += [(off + 4 * i, f"lstm{i}") for i in range(4)]
        off += 16
        self.tensors = []
        while off < len(data):
            nd, ln, tt = struct.unpack_from("<3i", data, off)
            nb = {0: 4, 1: 2}[tt]
            ne = struct.unpack_from(f"<{nd}i", data, off + 12)
            n_el = int(np.prod(ne)) if nd else 1
            dstart = off + 12 + 4 * nd + ln
            self.tensors.append((off, nd, ln, dstart, n_el * nb))
            off = dstart + n_el * nb


def _mutate_file(rng: random.Random, layout, original: bytes) -> "tuple[bytes, str]":
    """One mutation of a model file: (new bytes, description)."""
    data = bytearray(original)
    kind = rng.choices(["field", "vocab", "tensor_head", "tensor_name", "data", "truncate", "append", "bytes"],
                       [30, 8 if hasattr(layout, "token_fields") else 0, 25, 5, 10, 12, 4, 6])[0]
    if kind == "field" or (kind == "vocab" and not hasattr(layout, "token_fields")):
        off, name = rng.choice(layout.fields)
        (orig,) = struct.unpack_from("<i", data, off)
        v = _int_value(rng, orig)
        struct.pack_into("<i", data, off, v)
        return bytes(data), f"{name}@{off}: {orig} -> {v}"
    if kind == "vocab":
        off = rng.choice(layout.token_fields)
        (orig,) = struct.unpack_from("<I", data, off)
        v = _int_value(rng, orig) & 0xFFFFFFFF
        struct.pack_into("<I", data, off, v)
        return bytes(data), f"token length@{off}: {orig} -> {v}"
    if kind in ("tensor_head", "tensor_name"):
        head, nd, ln, dstart, nbytes = rng.choice(layout.tensors)
        if kind == "tensor_name":
            i = head + 12 + 4 * nd + rng.randrange(ln)
            data[i] = rng.randrange(256)
            return bytes(data), f"tensor name byte@{i}"
        slot = rng.randrange(3 + nd)
        off = head + 4 * slot
        (orig,) = struct.unpack_from("<i", data, off)
        v = _int_value(rng, orig)
        struct.pack_into("<i", data, off, v)
        return bytes(data), f"tensor@{head} field {slot}: {orig} -> {v}"
    if kind == "data":
        head, nd, ln, dstart, nbytes = rng.choice(layout.tensors)
        pattern = rng.choice([b"\x00\x7e", b"\x00\x7c", b"\x00\xfc", b"\xff\xff", b"\x00\x00\xc0\x7f",
                              b"\x00\x00\x80\x7f", bytes(rng.randrange(256) for _ in range(4))])
        n = rng.choice([1, 4, 64, nbytes])
        start = dstart + rng.randrange(max(1, nbytes - min(n, nbytes) + 1))
        for i in range(start, min(start + n, dstart + nbytes), len(pattern)):
            chunk = pattern[:dstart + nbytes - i]
            data[i:i + len(chunk)] = chunk
        return bytes(data), f"data@{start} x{n} {pattern.hex()}"
    if kind == "truncate":
        cut = rng.choice([rng.randrange(len(data)), rng.randrange(min(len(data), 70000)),
                          len(data) - rng.randrange(1, 64)])
        return bytes(data[:cut]), f"truncated to {cut}"
    if kind == "append":
        extra = bytes(rng.randrange(256) for _ in range(rng.choice([1, 4, 12, 100])))
        return bytes(data) + extra, f"{len(extra)} bytes appended"
    for _ in range(rng.choice([1, 2, 8])):
        i = rng.randrange(min(len(data), rng.choice([256, 4096, len(data)])))
        data[i] = rng.randrange(256)
    return bytes(data), "random bytes"


# --------------------------------------------------------------------------- the worker's world
class World:
    """What the cases need, made once per worker process."""

    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg
        self.tmp = Path(tempfile.mkdtemp(prefix="wn-fuzz-"))
        self.model_path = Path(cfg["model"])
        self.vad_path = Path(cfg["vad"])
        self._model = None
        self._jfk = None
        self._whisper_layout = None
        self._vad_layout = None
        self._audio_files = None
        self._model_original = None

    @property
    def jfk(self) -> np.ndarray:
        if self._jfk is None:
            import whisperx_native as wn

            self._jfk = wn.load_audio(self.cfg["jfk"])
        return self._jfk

    @property
    def model(self):
        if self._model is None:
            import whisperx_native as wn

            self._model = wn.Model(self.model_path, n_threads=1, adapt_threads=False)
        return self._model

    @property
    def whisper_layout(self) -> WhisperLayout:
        if self._whisper_layout is None:
            self._whisper_layout = WhisperLayout(self.model_path)
        return self._whisper_layout

    @property
    def vad_layout(self) -> VadLayout:
        if self._vad_layout is None:
            self._vad_layout = VadLayout(self.vad_path)
        return self._vad_layout

    def audio_files(self) -> dict:
        if self._audio_files is None:
            import soundfile as sf

            x = self.jfk[:16000]
            d = self.tmp / "audio"
            d.mkdir()
            files = {}
            for name, rate, ch, fmt, sub in [
                ("a.wav", 16000, 1, "WAV", "PCM_16"), ("b.wav", 44100, 2, "WAV", "PCM_24"),
                ("c.wav", 8000, 1, "WAV", "FLOAT"), ("d.wav", 22050, 1, "WAV", "PCM_U8"),
                ("a.flac", 44100, 2, "FLAC", "PCM_16"), ("a.ogg", 44100, 1, "OGG", "VORBIS"),
                ("a.opus", 48000, 1, "OGG", "OPUS"), ("a.mp3", 44100, 1, "MP3", "MPEG_LAYER_III"),
                ("a.aiff", 16000, 1, "AIFF", "PCM_16"), ("a.w64", 16000, 1, "W64", "PCM_16"),
            ]:
                import soxr

                y = x if rate == 16000 else soxr.resample(x, 16000, rate).astype(np.float32)
                if ch == 2:
                    y = np.stack([y, y * 0.5], axis=1)
                p = d / name
                sf.write(str(p), y, rate, format=fmt, subtype=sub)
                files[name] = p.read_bytes()
            try:
                files["a.m4a"] = _m4a(d / "a.m4a", x)
            except Exception:  # PyAV without an AAC encoder: the other formats still run
                pass
            self._audio_files = files
        return self._audio_files


def _m4a(path: Path, x: np.ndarray) -> bytes:
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as out:
        a = out.add_stream("aac", rate=16000, layout="mono")
        for i in range(0, len(x), 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[None, i:i + 1024]), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, i, Fraction(1, 16000)
            out.mux(a.encode(frame))
        out.mux(a.encode(None))
    return path.read_bytes()


class CaseFailed(Exception):
    """A case's own check failed (outcome ``wrong``)."""


# --------------------------------------------------------------------------- cases
def case_model(rng: random.Random, w: World) -> str:
    import whisperx_native as wn

    lay = w.whisper_layout
    if w._model_original is None:
        w._model_original = w.model_path.read_bytes()
    data, what = _mutate_file(rng, lay, w._model_original)
    p = w.tmp / "model.bin"
    p.write_bytes(data)
    try:
        with wn.Model(p, n_threads=1, adapt_threads=False, max_idle_states=0) as m:
            m.transcribe(w.jfk[:16000], preset=rng.choice(["fast", "accurate"]), language="en")
    finally:
        p.unlink()
    return what


def case_vad(rng: random.Random, w: World) -> str:
    import whisperx_native as wn
    from whisperx_native import _native
    from whisperx_native.vad import load_vad

    original = w.vad_path.read_bytes()
    data, what = _mutate_file(rng, w.vad_layout, original)
    if rng.random() < 0.1:  # a whisper model where a VAD model belongs
        data, what = w.model_path.read_bytes()[:rng.choice([100, 70000, 2_000_000])], "a whisper model (head)"
    p = w.tmp / "vad.bin"
    p.write_bytes(data)
    try:
        how = rng.choice(["load_vad", "native", "transcribe"])
        if how == "transcribe":
            w.model.transcribe(w.jfk[:32000], preset="fast", vad=True, vad_model=str(p))
        elif how == "native":
            with _native.VadContext(str(p), n_threads=rng.choice([1, 2, 1000])) as v:
                v.detect(w.jfk[:16000])
        else:
            v, _ = load_vad(p, n_threads=1)
            try:
                v.segments(w.jfk[:16000])
            finally:
                v.close()
    finally:
        p.unlink()
    return what


def case_audio(rng: random.Random, w: World) -> str:
    import whisperx_native as wn

    r = rng.random()
    if r < 0.08:
        return _special_file(rng, w)
    files = w.audio_files()
    name = rng.choice(sorted(files))
    data = bytearray(files[name])
    kind = rng.choice(["header_int", "header_bytes", "truncate", "bytes", "garbage", "wav_fields"])
    if kind == "wav_fields" and name.endswith(".wav"):
        # fmt chunk fields of a canonical WAV: format, channels, rate, byte rate, align, bits; data size
        off, fmt = rng.choice([(20, "<H"), (22, "<H"), (24, "<I"), (28, "<I"), (32, "<H"), (34, "<H"),
                               (16, "<I"), (4, "<I")] + ([(40, "<I")] if name == "a.wav" else []))
        size = struct.calcsize(fmt)
        orig = struct.unpack_from(fmt, data, off)[0]
        v = rng.choice([0, 1, 2, 3, 255, 256, 1000, 65535, orig * 2, orig + 1, max(0, orig - 1)] +
                       ([2**32 - 1, 2**31, 2**24] if size == 4 else []))
        v &= (1 << (8 * size)) - 1
        struct.pack_into(fmt, data, off, v)
        what = f"{name} field@{off}: {orig} -> {v}"
    elif kind in ("header_int", "wav_fields"):
        off = rng.randrange(0, min(len(data) - 4, 128))
        v = rng.choice([0, 1, 2, 2**31 - 1, 2**32 - 1, 1000, 65535, rng.randrange(2**32)])
        struct.pack_into("<I", data, off, v)
        what = f"{name} int@{off} = {v}"
    elif kind == "header_bytes":
        for _ in range(rng.choice([1, 2, 4, 16])):
            data[rng.randrange(min(len(data), 512))] = rng.randrange(256)
        what = f"{name} header bytes"
    elif kind == "truncate":
        cut = rng.choice([rng.randrange(len(data)), rng.randrange(min(len(data), 200))])
        data = data[:cut]
        what = f"{name} truncated to {cut}"
    elif kind == "bytes":
        for _ in range(rng.choice([1, 8, 64])):
            data[rng.randrange(len(data))] = rng.randrange(256)
        what = f"{name} random bytes"
    else:
        data = bytearray(data[:rng.choice([4, 12, 44, 64])] + bytes(rng.randrange(256) for _ in range(
            rng.choice([0, 10, 1000, 20000]))))
        what = f"{name} head + garbage"
    p = w.tmp / f"mut{Path(name).suffix}"
    p.write_bytes(bytes(data))
    try:
        x = wn.load_audio(p)
        if x.size and rng.random() < 0.1 and x.size < 16000 * 5:
            w.model.transcribe(x, preset="fast")
    finally:
        p.unlink()
    return what


def _special_file(rng: random.Random, w: World) -> str:
    import whisperx_native as wn

    kind = rng.choice(["fifo", "dev_zero", "dev_null", "dev_urandom", "dir", "socket", "symlink_zero",
                       "non_utf8", "nul", "long_name", "missing", "unreadable", "bytes_path"])
    d = w.tmp / f"special-{rng.randrange(1 << 30)}"
    d.mkdir()
    try:
        if kind == "fifo":
            p = d / "fifo.wav"
            os.mkfifo(p)
        elif kind == "dev_zero":
            p = Path("/dev/zero")
        elif kind == "dev_null":
            p = Path("/dev/null")
        elif kind == "dev_urandom":
            p = Path("/dev/urandom")
        elif kind == "dir":
            p = d
        elif kind == "socket":
            p = d / "s.wav"
            s = socket.socket(socket.AF_UNIX)
            s.bind(str(p))
        elif kind == "symlink_zero":
            p = d / "z.wav"
            os.symlink("/dev/zero", p)
        elif kind == "non_utf8":
            p = Path(os.fsdecode(bytes(d) + b"/\xff\xfe.wav"))
            p.write_bytes(w.audio_files()["a.wav"])
        elif kind == "nul":
            p = str(d) + "/a\x00b.wav"
        elif kind == "long_name":
            p = d / ("x" * 300 + ".wav")
        elif kind == "missing":
            p = d / "missing.wav"
        elif kind == "unreadable":
            p = d / "u.wav"
            p.write_bytes(b"RIFF")
            p.chmod(0)
        else:
            p = os.fsencode(str(d / "a.wav"))
        how = rng.choice(["load", "transcribe"])
        if how == "load":
            wn.load_audio(p)
        else:
            w.model.transcribe(p, preset="fast")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return kind


def _weird_values(rng: random.Random):
    nan, inf = float("nan"), float("inf")
    pool = [nan, inf, -inf, 0, -1, 1, 2, 5, 8, 9, 2**31, 2**31 - 1, 2**40, -2**63, 2**64, 1e-30, 1e30, -1e12,
            0.5, 1.5, "", "en", "auto", "xx", "EN", "\ud800", "\udcff", "e\x00n", "漢", None, [], {}, (),
            True, False, object(), b"en", np.float32("nan"), np.int64(2**40), np.float64(0.2), np.int32(3),
            np.bool_(True), 1j, "5", "0.2", -0.0]
    return rng.choice(pool)


def _prompt(rng: random.Random):
    n = rng.choice([1, 100, 1000, 10_000, 30_000, 100_000])
    piece = rng.choice(["a", " ", "漢", "\n", "ab1 ", "!", "é", "a b", "\t ", "😀", "x" * 7 + ".", "0"])
    return (piece * n)[: n * len(piece)]


#: Valid values at the edges of each option's range: whisper.cpp must run them all.
_EDGES = {
    "beam_size": [1, 2, 8], "best_of": [1, 2, 8], "temperature": [0.0, 0.5, 1.0],
    "temperature_increment": [0.0, 0.05, 0.5, 1.0], "entropy_threshold": [-1e6, 0.0, 1e6],
    "logprob_threshold": [-1e6, 0.0, 1e6], "no_speech_threshold": [-1e6, 0.0, 1.0, 1e6],
    "compression_ratio_threshold": [0.0, 1.0, 1e6, -1.0], "patience": [0.0, 0.5, 100.0, -1.0],
    "length_penalty": [None, 0.0, 1.0, -5.0, 1e6], "max_segment_length": [0, 1, 2, 1000],
    "max_tokens": [0, 1, 2, 448, 1_000_000], "audio_ctx": [0, 1, 64, 256, 1499, 1500],
    "offset_ms": [0, 1, 400, 10_000, 28_800_000], "duration_ms": [0, 1, 50, 10_000, 28_800_000],
    "n_threads": [0, 1, 2, 1000], "decode_threads": [0, 1], "token_timestamps": [True],
    "single_segment": [True], "split_on_word": [True], "suppress_blank": [False],
    "suppress_non_speech": [True], "timestamps": [False], "no_context": [False],
    "condition_on_previous_text": [False], "carry_initial_prompt": [True], "translate": [False],
    "language": ["en", "EN", "auto", "", None], "vad": [True],
    "initial_prompt": ["", " ", "a", "\n\n", "Kubernetes, kubectl, etcd.", "漢" * 500, "😀" * 400],
}


def case_options(rng: random.Random, w: World) -> str:
    import dataclasses

    from whisperx_native.options import DecodeOptions

    fields = [f.name for f in dataclasses.fields(DecodeOptions)]
    if rng.random() < 0.4:  # valid edge values, several at once: they must all run
        opts = {}
        for name in rng.sample(sorted(_EDGES), rng.choice([1, 2, 3, 5])):
            opts[name] = rng.choice(_EDGES[name])
        if opts.get("decode_threads") and not opts.get("n_threads"):
            opts["n_threads"] = 1
        preset = rng.choice(["fast", "accurate"])
        x = w.jfk[:rng.choice([1600, 8000, 16000, 48000])]
        w.model.transcribe(x, preset=preset, **opts)
        return f"edges {opts!r} preset={preset} {x.size} samples"[:200]
    # faster-whisper's keywords too (compat.py translates them before the check)
    compat = ["word_timestamps", "vad_filter", "vad_parameters", "task", "without_timestamps", "hotwords",
              "log_progress", "log_prob_threshold", "max_new_tokens", "prefix", "batch_size", "clip_timestamps"]
    opts = {}
    for _ in range(rng.choice([1, 1, 2, 3])):
        name = rng.choice(fields + compat + ["initial_prompt", "temperature", "temperature_increment", "language"])
        if name == "initial_prompt" and rng.random() < 0.6:
            opts[name] = _prompt(rng)
        elif name in ("vad_parameters", "temperature") and rng.random() < 0.5:
            opts[name] = rng.choice([{"threshold": _weird_values(rng)}, {"speech_pad_ms": 2**31},
                                     {"min_silence_duration_ms": _weird_values(rng)}, {"bogus": 1},
                                     [0.0, _weird_values(rng)], [], (0.0, 0.2, 0.4), [float("nan")]])
        else:
            opts[name] = _weird_values(rng)
    if rng.random() < 0.15:  # the campaign's runaways: a temperature list without end
        opts.update(temperature=rng.choice([-float("inf"), -1e12, float("nan")]),
                    temperature_increment=rng.choice([0.2, 1e-30, 1e-9]))
    if rng.random() < 0.1:
        opts["not_an_option"] = 1
    kw = {}
    if rng.random() < 0.2:
        kw["preset"] = rng.choice(["fast", "accurate", "slow", 5, None, ""])
    else:
        kw["preset"] = "fast"
    if rng.random() < 0.1:
        kw["progress_callback"] = rng.choice([5, "x", lambda p: None])
    desc = {k: (v if not isinstance(v, str) or len(v) < 20 else f"<{len(v)} chars {v[:3]!r}>") for k, v in opts.items()}
    if "vad" in opts or "vad_parameters" in opts or "vad_model" in opts:
        opts.setdefault("vad_model", None)
    w.model.transcribe(w.jfk[:8000 if rng.random() < 0.8 else 16000], **kw, **opts)
    return repr(desc)[:200] + repr({k: v for k, v in kw.items() if k != "progress_callback"})


def case_api(rng: random.Random, w: World) -> str:
    import whisperx_native as wn
    from whisperx_native import _native

    kind = rng.choice(["array", "array", "model_args", "vad_args", "state", "segments", "language_id",
                       "streaming", "iter"])
    if kind == "streaming":
        from whisperx_native.realtime import RingBuffer, SimulatedCapture, StreamingTranscriber

        name = rng.choice(["step_s", "max_utterance_s", "min_speech_ms", "latency_budget_s", "vad_threshold",
                           "min_silence_ms", "speech_pad_ms", "block_s", "speed"])
        value = _weird_values(rng)
        ring = RingBuffer(1.0)
        if name in ("block_s", "speed"):
            SimulatedCapture(w.jfk[:1600], ring, realtime=False, **{name: value})
        else:
            tr = StreamingTranscriber(w.model, ring, vad=rng.random() < 0.5, **{name: value})
            if tr.vad is not None:
                tr.vad.close()
        return f"streaming {name}={value!r}"[:200]
    if kind == "iter":
        opts = {rng.choice(["beam_size", "temperature", "language", "initial_prompt", "n_threads"]):
                _weird_values(rng)}
        with w.model.transcribe_iter(w.jfk[:8000], preset="fast", **opts) as segs:
            for _ in segs:
                pass
        return f"transcribe_iter({opts!r})"[:200]
    if kind == "array":
        a = rng.choice([
            np.zeros(16000, ">f4"), np.full(16000, 1e30, np.float32), np.full(16000, np.nan),
            np.zeros(16000, np.int32), np.zeros(16000, ">i2"), np.zeros((16000, 2), np.float32), np.float32(1.0),
            np.zeros(16000, np.complex64), np.array(["a"] * 10), np.zeros(16000, np.float16),
            np.zeros(16000, object), np.zeros(0, np.float32), [0.0] * 16000, "not a path\x00",
            np.zeros(16000, np.float32)[::2], np.frombuffer(b"\x00" * 64000, np.float32), b"\x00" * 100,
            np.full(16000, np.inf, np.float32), np.full(16000, 70000.0, np.float32),
        ])
        sr = rng.choice([16000, 16000, 44100, 0, -1, float("nan"), "16000", None])
        w.model.transcribe(a, sample_rate=sr, preset="fast")
        return f"array {getattr(a, 'dtype', type(a).__name__)} sr={sr!r}"
    if kind == "model_args":
        args = dict(n_threads=_weird_values(rng)) if rng.random() < 0.5 else dict(max_idle_states=_weird_values(rng))
        path = rng.choice([w.model_path, str(w.model_path), 123, None, "no-such-model", "", "a\x00b", b"x",
                           "/dev/zero", w.tmp])
        with wn.Model(path if rng.random() < 0.5 else w.model_path, **args) as m:
            m.transcribe(w.jfk[:8000], preset="fast")
        return f"Model({path!r}, {args!r})"[:200]
    if kind == "vad_args":
        n = rng.choice([1, 2, 1000, 10**9, 2**40, 0, -1, "2", None, float("nan"), 2.5])
        with _native.VadContext(str(w.vad_path), n_threads=n) as v:
            v.detect(w.jfk[:16000], reset=rng.choice([True, False]))
        return f"VadContext(n_threads={n!r})"
    if kind == "segments":
        kw = {rng.choice(["threshold", "min_speech_ms", "min_silence_ms", "max_speech_s", "speech_pad_ms",
                          "overlap_s"]): _weird_values(rng)}
        with _native.VadContext(str(w.vad_path)) as v:
            v.segments(rng.choice([w.jfk[:16000], np.zeros(16000), np.zeros((2, 8)), [0.1] * 600]), **kw)
        return f"segments({kw!r})"[:200]
    if kind == "language_id":
        code = rng.choice(["en", "\ud800", "x" * 10000, "", "e\x00n"])
        _native.lang_id(code)
        return f"lang_id({code[:8]!r})"
    ctx = _native.Context(str(w.model_path))
    st = ctx.new_state()
    try:
        what = rng.choice(["init_twice", "detect_threads", "close_twice", "cancel_gen", "full_raw", "full_raw"])
        if what == "full_raw":  # the native layer checks what it is given, as Model does
            import dataclasses

            from whisperx_native.options import DecodeOptions

            names = [f.name for f in dataclasses.fields(DecodeOptions)]
            raw = {rng.choice(names): _weird_values(rng) for _ in range(rng.choice([1, 2]))}
            if rng.random() < 0.3:
                raw.update(temperature=float("nan"), temperature_increment=0.2)
            st.full(w.jfk[:8000], DecodeOptions(**{"n_threads": 1, "beam_size": 1, "best_of": 1,
                                                   "temperature_increment": 0.0, "language": "en", **raw})
                    if rng.random() < 0.9 else rng.choice([None, {}, "opts"]))
            return f"State.full({raw!r})"[:200]
        if what == "init_twice":
            st.__init__(ctx)
        elif what == "detect_threads":
            st.detect_language(w.jfk[:16000], rng.choice([1, 1000, 2**40, -1, "x"]))
        elif what == "close_twice":
            st.close()
            st.close()
            st.cancel()
        else:
            st.cancel(rng.choice([None, 0, 1, -1, "x", 2**70]))
        return f"state {what}"
    finally:
        st.close()
        ctx.close()


def case_ring(rng: random.Random, w: World) -> str:
    from whisperx_native.realtime import RingBuffer

    args = {}
    for name in rng.sample(["capacity_s", "input_rate", "input_channels"], rng.choice([0, 1, 2])):
        if rng.random() < 0.5:
            args[name] = rng.choice([float("inf"), 1e9, 1e-5, 0, -1, float("nan"), 2**40, "x", None, 65, 10**6])
        else:
            args[name] = {"capacity_s": rng.choice([0.04, 1.0, 30.0]), "input_rate": rng.choice([8000, 44100, 48000.0]),
                          "input_channels": rng.choice([1, 2, 6])}[name]
    ring = RingBuffer(**args)
    for _ in range(rng.choice([1, 3, 10])):
        chunk = rng.choice([np.zeros(512, np.float32), np.zeros(1000, np.int16), np.zeros((256, 2), np.float32),
                            np.zeros(3, np.float32), np.zeros(10**6, np.float32), np.zeros(100, np.int32),
                            np.zeros(120, ">f4"), "abc", None, np.zeros((2, 2, 2), np.float32), [0.0] * 12,
                            np.full(600, np.nan, np.float32), np.zeros((100, 6), np.int16)])
        if rng.random() < 0.7 and isinstance(chunk, np.ndarray) and chunk.dtype.kind != "i" or chunk is None:
            chunk = np.zeros((rng.choice([1, 64, 4096]), ring.input_channels), np.float32)
        ring.push(chunk)
        if rng.random() < 0.5:
            ring.read(rng.choice([None, 0, 10, -5, 2**70, float("nan"), "x"]))
        if rng.random() < 0.2:
            ring.wait(rng.choice([1, 10**9, float("nan")]), timeout=rng.choice([0.0, 0.01, float("nan"), -1]))
    if rng.random() < 0.5:
        ring.close()
        ring.push(np.zeros(10, np.float32))
    return f"RingBuffer({args!r})"


def case_manager(rng: random.Random, w: World) -> str:
    import whisperx_native as wn

    args = dict(auto_downgrade=False)
    for name in rng.sample(["idle_timeout", "memory_budget", "max_concurrent", "cpu_threshold", "cpu_window",
                            "cpu_interval", "n_threads", "upgrade_after", "history", "downgrade_chain"],
                           rng.choice([1, 2])):
        args[name] = _weird_values(rng) if rng.random() < 0.7 else rng.choice([float("inf"), 1e-9, 0.1, 1, 2])
    if rng.random() < 0.3:
        args["auto_downgrade"] = True
        args.setdefault("cpu_interval", 0.05)
    model = rng.choice([str(w.model_path), "no-such-model", "tiny.en-q9_9", "", "large-v3"])
    mgr = wn.WhisperManager(model, **args)
    try:
        mgr.status()
        if rng.random() < 0.3:
            mgr.transcribe(w.jfk[:8000], preset="fast")
            mgr.status()
    finally:
        mgr.close()
    return f"WhisperManager({model!r}, {args!r})"[:200]


def case_cancel(rng: random.Random, w: World) -> str:
    """A cancel aimed at one call must never reach the next, unrelated one."""
    import whisperx_native as wn
    from whisperx_native.cancel import CancelToken

    m = w.model
    widen = rng.random() < 0.5
    orig_bind = CancelToken.bind

    def slow_bind(self, state):  # the campaign's trick: widen the window after the run
        if state is None:
            time.sleep(0.05)
        return orig_bind(self, state)

    if widen:
        CancelToken.bind = slow_bind
    try:
        how = rng.choice(["token", "model"])
        token = CancelToken()
        delay = rng.choice([0.0, 0.01, 0.05, 0.2])

        def canceller():
            time.sleep(delay)
            token.cancel() if how == "token" else m.cancel()
            time.sleep(0.03)
            token.cancel() if how == "token" else m.cancel()

        t = threading.Thread(target=canceller)
        t.start()
        try:
            m.transcribe(w.jfk[:8000], preset="fast", cancel_token=token)
        except wn.Cancelled:
            pass
        t.join()
        if how == "model":  # Model.cancel() after the call: nothing is running, nothing to cancel
            m.cancel()
        try:
            m.transcribe(w.jfk[:8000], preset="fast")
        except wn.Cancelled:
            raise CaseFailed(f"a cancel ({how}, after {delay} s{', widened' if widen else ''}) "
                             "leaked into the next, unrelated call") from None
    finally:
        CancelToken.bind = orig_bind
    return f"{how} delay={delay} widen={widen}"


CASES = {c: globals()[f"case_{c}"] for c in CATEGORIES}


def run_case(case_id: str, w: World) -> dict:
    """Run one case in this process; the outcome as a dict."""
    from whisperx_native.errors import WhisperError

    category = case_id.rsplit("-", 1)[0]
    rng = random.Random(case_id)
    t0 = time.perf_counter()
    out = {"id": case_id}
    try:
        out["what"] = CASES[category](rng, w)
        out["outcome"] = "ok"
    except WhisperError as exc:  # first: MemoryBudgetError is a MemoryError too, and a refusal
        out.update(outcome="refused", type=type(exc).__name__, msg=str(exc)[:300])
    except MemoryError as exc:
        out.update(outcome="runaway", type="MemoryError", msg=str(exc)[:300])
    except CaseFailed as exc:
        out.update(outcome="wrong", type="CaseFailed", msg=str(exc)[:300])
    except Exception as exc:
        out.update(outcome="foreign", type=type(exc).__name__, msg=str(exc)[:300],
                   tb=traceback.format_exc()[-2000:])
    out["s"] = round(time.perf_counter() - t0, 3)
    return out


def _limit_memory() -> None:
    import resource

    limit = int(os.environ.get("WHISPERX_NATIVE_FUZZ_AS", str(6 << 30)))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def worker() -> None:
    """Read a JSON config on stdin; run its case ids; one marked JSON line per event."""
    cfg = json.loads(sys.stdin.readline())
    _limit_memory()
    w = World(cfg)
    try:
        for case_id in cfg["ids"]:
            print(MARK + json.dumps({"start": case_id}), flush=True)
            print(MARK + json.dumps(run_case(case_id, w)), flush=True)
        import gc

        gc.collect()
        print(MARK + json.dumps({"done": True}), flush=True)
    finally:
        shutil.rmtree(w.tmp, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        worker()
    else:  # reproduce cases by id, in this process
        sys.path.insert(0, str(Path(__file__).parent))
        from conftest import _converted  # noqa: E402
        from whisperx_native.vad import default_vad_model  # noqa: E402

        cache = Path(os.environ.get("WHISPERX_NATIVE_TEST_CACHE") or Path.home() / ".cache" / "whisperx_native-tests")
        from _util import JFK_WAV  # noqa: E402

        world = World({"model": str(_converted("tiny.en", cache)), "vad": str(default_vad_model()),
                       "jfk": str(JFK_WAV)})
        for cid in sys.argv[1:]:
            print(json.dumps(run_case(cid, world)))
