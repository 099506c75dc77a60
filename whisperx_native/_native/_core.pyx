# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, embedsignature=True
"""Native core: owns whisper.cpp objects and runs them with the GIL released.

Ownership model (see also _core.pyi):

* ``Context`` owns one ``whisper_context`` (the weights), created without a state.
* ``State`` owns one ``whisper_state`` (KV caches + compute buffers) for one running
  transcription. Several states of one context may run at the same time in different
  threads; one state is entered by one thread at a time (``BusyError`` otherwise).
* Native memory is freed exactly once. A context is freed only after every state
  created from it is freed, so closing a model while another thread transcribes never
  frees weights under a running computation: the last user frees them.

Policy (presets, threads, language, long-form chunks) lives above, in
whisperx_native.pipeline; what is here checks its input and owns native memory.
"""

from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memset
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython cimport array

cimport cython
cimport whisper as w

import logging
import os
import re
import threading
import weakref
import zlib as _zlib
import array
import collections as _collections

from whisperx_native.errors import (
    AudioError,
    BusyError,
    Cancelled,
    ClosedError,
    InferenceError,
    ModelError,
    OptionError,
    OptionTypeError,
    UsageError,
)


#: One decoded token as ``State.full`` returns it: ``text`` is bytes (a character may be
#: split over tokens), times are seconds from the start of the samples given to ``full``;
#: ``t0``/``t1`` are whisper.cpp's token timestamps (-0.01 when not computed),
#: ``dtw_start``/``dtw_end`` the alignment heads' DTW times (None when not computed and for
#: special tokens): where the path enters this token and where it enters the next one.
RawToken = _collections.namedtuple("RawToken", "id text p logprob t0 t1 dtw_start dtw_end")
#: One segment as ``State.full`` returns it (``tokens`` None unless asked for).
RawSegment = _collections.namedtuple("RawSegment", "t0 t1 text no_speech_prob speaker_turn_next tokens")

#: Alignment-head presets of whisper.cpp (openai-whisper's ``_ALIGNMENT_HEADS``), by model name.
ALIGNMENT_HEADS = {
    "tiny.en": w.WHISPER_AHEADS_TINY_EN, "tiny": w.WHISPER_AHEADS_TINY,
    "base.en": w.WHISPER_AHEADS_BASE_EN, "base": w.WHISPER_AHEADS_BASE,
    "small.en": w.WHISPER_AHEADS_SMALL_EN, "small": w.WHISPER_AHEADS_SMALL,
    "medium.en": w.WHISPER_AHEADS_MEDIUM_EN, "medium": w.WHISPER_AHEADS_MEDIUM,
    "large-v1": w.WHISPER_AHEADS_LARGE_V1, "large-v2": w.WHISPER_AHEADS_LARGE_V2,
    "large-v3": w.WHISPER_AHEADS_LARGE_V3, "large-v3-turbo": w.WHISPER_AHEADS_LARGE_V3_TURBO,
}

#: The K/V cache types a Context takes (vendor/patches/0014), by name.
KV_TYPES = {"f16": w.GGML_TYPE_F16, "q8_0": w.GGML_TYPE_Q8_0}


#: Mel frames of one 30-s window (10 ms each).
WINDOW_FRAMES = 3000

#: Every native failure the binding reports, in one table (pyarrow's check_status idea):
#: (whisper.cpp function, return code) -> its documented meaning (src/whisper.cpp, 1.8.5 +
#: vendor/patches). Boolean/NULL-returning functions report failure as code -1.
STATUS = {
    ("whisper_full", -1): "VAD failed to filter the audio",
    ("whisper_full", -2): "failed to compute the log mel spectrogram",
    ("whisper_full", -3): "failed to auto-detect the language",
    ("whisper_full", -4): "too many decoders requested (beam size / best_of too large)",
    ("whisper_full", -5): "audio_ctx is larger than the model's audio context",
    ("whisper_full", -6): "encoder failed",
    ("whisper_full", -7): "failed to allocate the self-attention KV cache",
    ("whisper_full", -8): "decoder failed while processing the prompt",
    ("whisper_full", -9): "decoder failed",
    ("whisper_full", -10): "the prefix is too long, or holds a token outside the vocabulary or end-of-text",
    ("whisper_tokenize", -1): "more tokens than the buffer holds",
    ("whisper_set_mel", -1): "the mel spectrogram's band count differs from the model's",
    ("whisper_pcm_to_mel", -1): "failed to compute the log mel spectrogram",
    ("whisper_lang_auto_detect", -1): "offset before the start of the audio",
    ("whisper_lang_auto_detect", -2): "offset past the end of the audio",
    ("whisper_lang_auto_detect", -6): "encoder failed",
    ("whisper_lang_auto_detect", -7): "decoder failed",
    ("whisper_vad_detect_speech", -1): "Silero VAD failed on the samples",
    ("whisper_vad_segments_from_samples", -1): "Silero VAD failed on the samples",
}


cdef int check_status(int rc, str where) except -1:
    """Raise InferenceError for a failed native call (rc < 0); 0 otherwise."""
    if rc < 0:
        raise InferenceError(rc, where, STATUS.get((where, rc), "unknown error"))
    return 0


def _describes(info, path) -> bool:
    """Whether ``info`` (a ModelInfo) was read from ``path`` as it is now (same file, size)."""
    if info is None:
        return False
    try:
        return os.path.samefile(info.path, path) and os.path.getsize(path) == info.file_size
    except (OSError, AttributeError, TypeError):
        return False


def _native_options(opts):
    from whisperx_native.validation import native_options

    return native_options(opts)


def _threads(n, field="n_threads"):
    """A thread count for whisper.cpp: an int >= 1, clamped to the cores we may use."""
    from whisperx_native.validation import clamp_threads

    return clamp_threads(n, field)

cdef extern from "ggml.h" nogil:
    int64_t ggml_time_us()
    void ggml_time_init()

# Build facts, set by CMakeLists.txt.
cdef extern from *:
    """
    #ifndef WHISPERX_COMPILER
    #define WHISPERX_COMPILER "unknown"
    #endif
    #ifndef WHISPERX_NATIVE_BUILD
    #define WHISPERX_NATIVE_BUILD 0
    #endif
    #ifndef WHISPERX_AMX_DISABLED
    #define WHISPERX_AMX_DISABLED 0
    #endif
    #ifndef WHISPERX_CUDA
    #define WHISPERX_CUDA 0
    #endif
    #ifndef WHISPERX_METAL
    #define WHISPERX_METAL 0
    #endif
    #ifndef WHISPERX_VULKAN
    #define WHISPERX_VULKAN 0
    #endif
    """
    const char * WHISPERX_COMPILER
    int WHISPERX_NATIVE_BUILD
    int WHISPERX_AMX_DISABLED
    int WHISPERX_CUDA
    int WHISPERX_METAL
    int WHISPERX_VULKAN

# Callback signatures must return C `bool`, not Cython's int-typed bint.
cdef extern from "<stdbool.h>":
    ctypedef bint c_bool "bool"

SAMPLE_RATE = w.WHISPER_SAMPLE_RATE
MAX_DECODERS = 8  # WHISPER_MAX_DECODERS in src/whisper.cpp

ggml_time_init()

# --------------------------------------------------------------------------- logging
# whisper.cpp and ggml log through one process-wide callback. We route it to the
# `whisperx_native.native` logger, and, for the thread that is loading a model or
# creating a state, also into a capture list: that is how native buffer sizes reach us
# (whisper.cpp has no API for them, it only logs them).

_logger = logging.getLogger("whisperx_native.native")
_capture = threading.local()
_PY_LEVELS = {
    w.GGML_LOG_LEVEL_DEBUG: logging.DEBUG,
    w.GGML_LOG_LEVEL_INFO: logging.INFO,
    w.GGML_LOG_LEVEL_WARN: logging.WARNING,
    w.GGML_LOG_LEVEL_ERROR: logging.ERROR,
}
cdef int _last_level = w.GGML_LOG_LEVEL_INFO
cdef bint _log_alive = False


cdef void _log_to_python(w.ggml_log_level level, const char * text, void * user_data) noexcept with gil:
    global _last_level
    if not _log_alive:
        return
    try:
        if level == w.GGML_LOG_LEVEL_CONT:
            level = <w.ggml_log_level>_last_level
        else:
            _last_level = level
        msg = (<bytes>text).decode("utf-8", "replace")
        lines = getattr(_capture, "lines", None)
        if lines is not None:
            lines.append(msg)
        msg = msg.rstrip("\n")
        if msg:
            _logger.log(_PY_LEVELS.get(level, logging.INFO), "%s", msg)
    except BaseException:
        pass  # never let a logging problem unwind through C++


cdef void _log_silent(w.ggml_log_level level, const char * text, void * user_data) noexcept nogil:
    pass


def _install_log_bridge():
    global _log_alive
    _log_alive = True
    w.whisper_log_set(_log_to_python, NULL)


def _shutdown_log_bridge():
    """Detach from Python logging (atexit: native code may log during teardown)."""
    global _log_alive
    _log_alive = False
    w.whisper_log_set(_log_silent, NULL)


_install_log_bridge()
import atexit as _atexit
_atexit.register(_shutdown_log_bridge)


class _Capture:
    """Collect native log lines emitted by this thread inside a `with` block."""

    def __enter__(self):
        self.prev = getattr(_capture, "lines", None)
        self.lines = []
        _capture.lines = self.lines
        return self.lines

    def __exit__(self, *exc):
        _capture.lines = self.prev
        return False


_MB = re.compile(r"^(?P<fn>\w+): +(?P<what>.+?) *= *(?P<mb>[0-9.]+) MB\s*$")


def _parse_sizes(lines):
    """Turn whisper.cpp's "name = 12.34 MB" log lines into {name: bytes}."""
    sizes = {}
    for line in lines:
        m = _MB.match(line.strip())
        if m:
            key = re.sub(r"[^a-z0-9]+", "_", m.group("what").lower()).strip("_")
            sizes[key] = int(round(float(m.group("mb")) * 1e6))
    return sizes


# --------------------------------------------------------------------------- build info
def version():
    """whisper.cpp version string of the linked library."""
    return (<bytes>w.whisper_version()).decode()


def system_info():
    """ggml's CPU feature report, e.g. 'AVX2 = 1 | FMA = 1 | ...'."""
    return (<bytes>w.whisper_print_system_info()).decode()


def build_info():
    """How this extension was compiled (reported by `whisperx-native info`)."""
    return {
        "whisper_cpp": version(),
        "compiler": (<bytes>WHISPERX_COMPILER).decode(),
        "native_cpu": bool(WHISPERX_NATIVE_BUILD),
        "amx_disabled_for_gcc": bool(WHISPERX_AMX_DISABLED),
        "cuda": bool(WHISPERX_CUDA),
        "metal": bool(WHISPERX_METAL),
        "vulkan": bool(WHISPERX_VULKAN),
        "system_info": system_info(),
    }


def languages():
    """{code: english name} of every language whisper knows."""
    cdef int i
    return {(<bytes>w.whisper_lang_str(i)).decode(): (<bytes>w.whisper_lang_str_full(i)).decode()
            for i in range(w.whisper_lang_max_id() + 1)}


def lang_id(code):
    """whisper's id of a language code, or -1 when unknown (a str that cannot be a
    code, with lone surrogates or NUL, is unknown too)."""
    if not isinstance(code, str):
        raise OptionTypeError(f"a language code is a str, got {type(code).__name__}")
    try:
        b = code.encode("utf-8")
    except UnicodeEncodeError:
        return -1
    if b"\x00" in b or len(b) > 64:
        return -1
    return w.whisper_lang_id(b)


# --------------------------------------------------------------------------- Context
cdef class Context:
    """The loaded weights of one model (a ``whisper_context`` without state)."""

    cdef w.whisper_context * _ctx
    cdef readonly str path
    cdef readonly double load_ms
    cdef readonly dict sizes          # native buffer sizes logged at load, bytes
    cdef readonly object alignment_heads  # as given: a preset name, ("top", n), pairs or None
    cdef readonly object info             # models.ggml_file.ModelInfo of the file
    cdef readonly str k_type              # the attention caches' K type: "f16" or "q8_0"
    cdef readonly str v_type              # ... and V type
    cdef w.whisper_ahead * _heads     # custom alignment heads (whisper.cpp keeps the pointer)
    cdef bint _closing                # close() requested
    cdef int _active                  # states alive (each holds the context)
    cdef object _lock
    cdef object __weakref__

    def __cinit__(self):
        self._ctx = NULL
        self._heads = NULL
        self._closing = False
        self._active = 0
        self._lock = threading.Lock()
        self.sizes = {}

    def __init__(self, path, *, bint use_gpu=True, bint flash_attn=True, int gpu_device=0,
                 alignment_heads=None, info=None, str k_type="f16", str v_type="f16"):
        """Load a ggml model file. The file is validated first, completely (see
        whisperx_native.models.ggml_file; a few ms): whisper.cpp trusts its input.

        ``alignment_heads`` makes word timestamps possible (``word_timestamps=True`` in a
        run): a model name of ``ALIGNMENT_HEADS``, ``("top", n)`` for every head of the last
        ``n`` decoder layers, or ``(text_layer, head)`` pairs. None: no word timestamps.

        ``info``: the ``ModelInfo`` its caller's ``ggml_file.validate(path)`` returned, so the
        file is parsed once per load (it is used only if it describes this very file).

        ``k_type`` / ``v_type``: the self- and cross-attention caches' K and V types, ``"f16"``
        or ``"q8_0"`` (half the memory; read by flash attention only, so it needs ``flash_attn``)."""
        from whisperx_native.models.ggml_file import validate as _validate_model
        from whisperx_native.validation import check_path

        if self._ctx != NULL:
            raise UsageError("Context.__init__ called twice")
        path = check_path(path, "path")
        for name, t in (("k_type", k_type), ("v_type", v_type)):
            if t not in KV_TYPES:
                raise OptionError(f"{name} must be one of {', '.join(KV_TYPES)}, got {t!r}")
            if t != "f16" and not flash_attn:
                raise OptionError(f"{name}={t!r} needs flash_attn=True (the other attention path reads f16 only)")
        if not _describes(info, path):
            info = _validate_model(path)  # ModelError for anything whisper.cpp could crash on
        self.info = info
        cdef w.whisper_context_params cparams = w.whisper_context_default_params()
        cdef bytes bpath = os.fsencode(path)
        cdef const char * cpath = bpath
        cdef int64_t t0
        cparams.use_gpu = use_gpu
        cparams.flash_attn = flash_attn
        cparams.gpu_device = gpu_device
        cparams.type_k, cparams.type_v = KV_TYPES[k_type], KV_TYPES[v_type]
        self.k_type, self.v_type = k_type, v_type
        self._set_heads(&cparams, alignment_heads)
        self.path = os.fsdecode(bpath)
        with _Capture() as lines:
            with nogil:
                t0 = ggml_time_us()
                self._ctx = w.whisper_init_from_file_with_params_no_state(cpath, cparams)
                t0 = ggml_time_us() - t0
        if self._ctx == NULL:
            detail = "; ".join(l.strip() for l in lines if "error" in l.lower() or "failed" in l.lower())
            raise ModelError(f"whisper.cpp could not load {self.path}" + (f": {detail}" if detail else ""))
        self.load_ms = t0 / 1000.0
        self.sizes = _parse_sizes(lines)
        try:
            self._check_heads()
        except BaseException:
            self._free()
            raise

    cdef int _set_heads(self, w.whisper_context_params * cp, object heads) except -1:
        cdef Py_ssize_t i
        self.alignment_heads = None
        if heads is None:
            return 0
        if isinstance(heads, str):
            if heads not in ALIGNMENT_HEADS:
                raise OptionError(f"no alignment-head preset for {heads!r}; known: {', '.join(ALIGNMENT_HEADS)}")
            cp.dtw_aheads_preset = ALIGNMENT_HEADS[heads]
        elif isinstance(heads, tuple) and len(heads) == 2 and heads[0] == "top":
            if type(heads[1]) is not int or heads[1] < 1:
                raise OptionError(f"alignment_heads ('top', n) needs an int n >= 1, got {heads[1]!r}")
            cp.dtw_aheads_preset = w.WHISPER_AHEADS_N_TOP_MOST
            cp.dtw_n_top = heads[1]
        else:
            try:
                pairs = [(int(l), int(h)) for l, h in heads]
            except (TypeError, ValueError):
                raise OptionTypeError("alignment_heads must be a preset name, ('top', n) or (layer, head) pairs") from None
            if not pairs or len(pairs) > 4096:
                raise OptionError("alignment_heads: 1 to 4096 (layer, head) pairs")
            heads = tuple(pairs)
            self._heads = <w.whisper_ahead *>malloc(len(pairs) * sizeof(w.whisper_ahead))
            if self._heads == NULL:
                raise MemoryError()
            for i in range(len(pairs)):
                self._heads[i].n_text_layer = pairs[i][0]
                self._heads[i].n_head = pairs[i][1]
            cp.dtw_aheads_preset = w.WHISPER_AHEADS_CUSTOM
            cp.dtw_aheads.n_heads = len(pairs)
            cp.dtw_aheads.heads = self._heads
        cp.dtw_token_timestamps = True
        self.alignment_heads = heads
        return 0

    cdef int _check_heads(self) except -1:
        # whisper.cpp would only log and fail each new state
        h = self.alignment_heads
        if h is None:
            return 0
        n_layer, n_head = w.whisper_model_n_text_layer(self._ctx), w.whisper_model_n_text_head(self._ctx)
        if isinstance(h, tuple) and len(h) == 2 and h[0] == "top":
            if h[1] > n_layer:
                raise OptionError(f"alignment_heads ('top', {h[1]}): the model has {n_layer} decoder layers")
        elif not isinstance(h, str):
            for l, hd in h:
                if not (0 <= l < n_layer and 0 <= hd < n_head):
                    raise OptionError(f"alignment head ({l}, {hd}) is outside the model's "
                                      f"{n_layer} layers x {n_head} heads")
        else:
            preset_layers = {"tiny": 4, "base": 6, "small": 12, "medium": 24, "large-v1": 32, "large-v2": 32,
                             "large-v3": 32, "large-v3-turbo": 4}[h.replace(".en", "")]
            if preset_layers != n_layer:
                raise OptionError(f"the {h!r} alignment heads are for {preset_layers} decoder layers, "
                                  f"this model has {n_layer}")
        return 0

    def __dealloc__(self):
        # Reached only when no State references us any more (each State holds a
        # strong reference), so the weights are unused.
        if self._ctx != NULL:
            w.whisper_free(self._ctx)
            self._ctx = NULL
        if self._heads != NULL:
            free(self._heads)
            self._heads = NULL

    cdef inline w.whisper_context * _alive(self) except NULL:
        if self._ctx == NULL or self._closing:
            raise ClosedError("the model is closed")
        return self._ctx

    # -- lifecycle -----------------------------------------------------------------
    @property
    def closed(self):
        return self._ctx == NULL or self._closing

    def close(self):
        """Stop accepting new work and free the weights once no state uses them.

        Safe to call more than once and from any thread. States that are
        running keep the weights alive until they finish and are closed."""
        with self._lock:
            self._closing = True
            if self._active == 0:
                self._free()

    cdef void _free(self) noexcept:
        if self._ctx != NULL:
            w.whisper_free(self._ctx)
            self._ctx = NULL

    cdef int _attach(self) except -1:
        with self._lock:
            self._alive()
            self._active += 1
        return 0

    cdef void _detach(self) noexcept:
        with self._lock:
            self._active -= 1
            if self._active == 0 and self._closing:
                self._free()

    def __enter__(self):
        self._alive()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- model facts ---------------------------------------------------------------
    def hparams(self):
        """Model dimensions as whisper.cpp loaded them."""
        cdef w.whisper_context * c = self._alive()
        return {
            "n_vocab": w.whisper_model_n_vocab(c),
            "n_audio_ctx": w.whisper_model_n_audio_ctx(c),
            "n_audio_state": w.whisper_model_n_audio_state(c),
            "n_audio_head": w.whisper_model_n_audio_head(c),
            "n_audio_layer": w.whisper_model_n_audio_layer(c),
            "n_text_ctx": w.whisper_model_n_text_ctx(c),
            "n_text_state": w.whisper_model_n_text_state(c),
            "n_text_head": w.whisper_model_n_text_head(c),
            "n_text_layer": w.whisper_model_n_text_layer(c),
            "n_mels": w.whisper_model_n_mels(c),
            "ftype": w.whisper_model_ftype(c),
        }

    @property
    def model_type(self):
        """'tiny', 'base', 'small', 'medium', 'large' (whisper.cpp's naming)."""
        return (<bytes>w.whisper_model_type_readable(self._alive())).decode()

    @property
    def multilingual(self):
        return bool(w.whisper_is_multilingual(self._alive()))

    @property
    def n_vocab(self):
        return w.whisper_n_vocab(self._alive())

    def tokenize(self, str text not None):
        """whisper.cpp's token ids for ``text``: each word (GPT-2's split) as its longest
        vocabulary entries from the left, as ``initial_prompt`` and ``prefix`` are read."""
        return _tokenize(self._alive(), text)

    def token_bytes(self, int token):
        """The bytes of vocabulary entry ``token`` (special tokens read ``[_SOT_]`` etc.; a C
        string: the entry of the NUL byte reads empty)."""
        cdef w.whisper_context * c = self._alive()
        if not 0 <= token < w.whisper_n_vocab(c):
            raise OptionError(f"token {token} is outside the vocabulary (0..{w.whisper_n_vocab(c) - 1})")
        return <bytes>w.whisper_token_to_str(c, token)

    def new_state(self):
        """Allocate a fresh per-transcription state (KV caches, compute buffers)."""
        return State(self)

    def __repr__(self):
        status = "closed" if self.closed else self.model_type
        return f"<whisperx_native._native.Context {status} {self.path!r}>"


# --------------------------------------------------------------------------- State
# Phases for the timing callbacks (measured at whisper.cpp's callback boundaries).
cdef enum:
    PHASE_MEL = 0
    PHASE_ENC = 1
    PHASE_DEC = 2

cdef struct RunCtl:
    volatile int abort          # set by cancel() or a failing Python callback
    int phase
    int64_t t_phase             # start of the current phase, us
    int64_t mel_us
    int64_t enc_us
    int64_t dec_us
    int n_encode
    double cr_threshold         # compression ratio that fails a window (0: no check)
    int py_logits               # a Python logits filter is set (tests: known logits)
    void * pystate              # borrowed State, used by the with-gil callbacks


cdef inline void _phase_to(RunCtl * ctl, int phase) noexcept nogil:
    cdef int64_t now = ggml_time_us()
    cdef int64_t dt = now - ctl.t_phase
    if ctl.phase == PHASE_MEL:
        ctl.mel_us += dt
    elif ctl.phase == PHASE_ENC:
        ctl.enc_us += dt
    else:
        ctl.dec_us += dt
    ctl.phase = phase
    ctl.t_phase = now


cdef c_bool _cb_encoder_begin(w.whisper_context * c, w.whisper_state * s, void * ud) noexcept nogil:
    cdef RunCtl * ctl = <RunCtl *>ud
    _phase_to(ctl, PHASE_ENC)
    ctl.n_encode += 1
    return ctl.abort == 0


cdef void _cb_logits(w.whisper_context * c, w.whisper_state * s, const w.whisper_token_data * tokens,
                     int n_tokens, float * logits, void * ud) noexcept nogil:
    # Called once per decoding step (per decoder), inside whisper_full on the calling
    # thread without the GIL; only the first call after an encode marks the phase change.
    cdef RunCtl * ctl = <RunCtl *>ud
    if ctl.phase == PHASE_ENC:
        _phase_to(ctl, PHASE_DEC)
    if ctl.py_logits:
        _cb_logits_py(c, tokens, n_tokens, logits, ctl)


cdef void _cb_logits_py(w.whisper_context * c, const w.whisper_token_data * tokens, int n_tokens,
                        float * logits, RunCtl * ctl) noexcept with gil:
    # The decoder's tokens so far and its logits (writable, n_vocab floats) to a Python
    # callable: a test feeds known logits through it to check the search itself.
    cdef int i
    cdef int n_vocab = w.whisper_n_vocab(c)
    (<State>ctl.pystate)._call_logits_filter([tokens[i].id for i in range(n_tokens)], <float[:n_vocab]>logits)


cdef c_bool _cb_fallback(w.whisper_context * c, w.whisper_state * s, const w.whisper_token_data * tokens,
                         int n_tokens, void * ud) noexcept with gil:
    # faster-whisper's test of a decoded window: text that gzip compresses more than
    # cr_threshold times is a repetition loop, and the next temperature is tried.
    cdef RunCtl * ctl = <RunCtl *>ud
    cdef int i
    cdef w.whisper_token eot = w.whisper_token_eot(c)
    try:
        text = b"".join([<bytes>w.whisper_token_to_str(c, tokens[i].id) for i in range(n_tokens) if tokens[i].id < eot])
        return bool(text) and len(text) / len(_zlib.compress(text)) > ctl.cr_threshold
    except BaseException:
        return False


cdef c_bool _cb_abort(void * ud) noexcept nogil:
    return (<RunCtl *>ud).abort != 0


cdef void _cb_progress(w.whisper_context * c, w.whisper_state * s, int progress, void * ud) noexcept with gil:
    cdef RunCtl * ctl = <RunCtl *>ud
    (<State>ctl.pystate)._call_user(0, progress)


cdef void _cb_new_segment(w.whisper_context * c, w.whisper_state * s, int n_new, void * ud) noexcept with gil:
    cdef RunCtl * ctl = <RunCtl *>ud
    (<State>ctl.pystate)._call_user(1, n_new)


@cython.no_gc_clear
cdef class State:
    """One ``whisper_state``: buffers for one transcription at a time."""

    cdef w.whisper_state * _st
    cdef Context _owner
    cdef RunCtl _ctl
    cdef object _run_lock
    cdef object _on_progress
    cdef object _on_segment
    cdef object _cb_error
    cdef object _logits_filter
    cdef int _segments_reported
    cdef int _max_decoders            # most decoders any run may have used (KV size)
    cdef long long _gen               # the owner's generation (claim()); cancels name it
    cdef readonly dict sizes          # native buffer sizes logged at init, bytes
    cdef object __weakref__

    def __cinit__(self):
        self._st = NULL
        self._owner = None
        memset(&self._ctl, 0, sizeof(RunCtl))
        self._run_lock = threading.Lock()
        self._max_decoders = 1
        self.sizes = {}

    def __init__(self, Context ctx not None):
        cdef w.whisper_context * c
        cdef w.whisper_state * st = NULL
        if self._st != NULL or self._owner is not None:
            raise UsageError("State.__init__ called twice")
        ctx._attach()
        try:
            c = ctx._alive()
            with _Capture() as lines:
                with nogil:
                    st = w.whisper_init_state(c)
            if st == NULL:
                raise MemoryError("whisper.cpp could not allocate a state (out of memory?)")
        except BaseException:
            ctx._detach()
            raise
        self._st = st
        self._owner = ctx
        self.sizes = _parse_sizes(lines)

    def __dealloc__(self):
        if self._st != NULL:
            w.whisper_free_state(self._st)
            self._st = NULL
        if self._owner is not None:
            self._owner._detach()
            self._owner = None

    cdef inline int _check(self) except -1:
        if self._st == NULL:
            raise ClosedError("the state is closed")
        self._owner._alive()
        return 0

    @property
    def closed(self):
        return self._st == NULL

    @property
    def context(self):
        return self._owner

    def close(self):
        """Free the state's buffers now. Raises BusyError while it is running."""
        if not self._run_lock.acquire(False):
            raise BusyError("cannot close a state while it is transcribing; cancel() it first")
        try:
            if self._st != NULL:
                w.whisper_free_state(self._st)
                self._st = NULL
                self._owner._detach()
                self._owner = None
        finally:
            self._run_lock.release()

    def __enter__(self):
        self._check()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def cancel(self, generation=None):
        """Stop the running transcription at its next abort check, or the next one to
        start if none runs (thread-safe). Each run clears the request when it ends.

        ``generation`` (from :meth:`claim`) ties the cancel to one owner of a pooled
        state: once the state was claimed again, a late cancel of the previous owner
        does nothing instead of cancelling an unrelated call."""
        if generation is None or generation == self._gen:
            self._ctl.abort = 1

    def claim(self):
        """Start a new owner of this state (a pool hands it to a new call): forget any
        cancel aimed at the previous owner and return the new generation for
        :meth:`cancel`. Raises BusyError while a run is in progress."""
        if not self._run_lock.acquire(False):
            raise BusyError("cannot claim a state while it is transcribing")
        try:
            self._gen += 1
            self._ctl.abort = 0
            return self._gen
        finally:
            self._run_lock.release()

    @property
    def generation(self):
        """The current owner's generation (see :meth:`claim`)."""
        return self._gen

    def memory(self):
        """Native bytes held by this state: KV caches and compute buffers.

        The self-attention cache grows when a run uses several decoders (beam
        search, or best-of sampling on temperature fallback); the figure here is
        the size after the largest such run so far."""
        from whisperx_native.models.registry import kv_self_cells

        sizes = dict(self.sizes)
        if self._max_decoders > 1 and "kv_self_size" in sizes and self._owner._ctx != NULL:
            # whisper.cpp reallocates kv_self for a window's worst case (vendor/patches/0010)
            n_ctx = w.whisper_model_n_text_ctx(self._owner._ctx)
            sizes["kv_self_size"] = (sizes["kv_self_size"] * kv_self_cells(n_ctx, self._max_decoders)
                                     // kv_self_cells(n_ctx))
        return sizes

    # -- callbacks into Python -----------------------------------------------------
    cdef void _call_user(self, int kind, int arg) noexcept:
        # Runs on whisper.cpp's thread with the GIL held. An exception is kept and
        # re-raised from transcribe(); the run is aborted at the next check.
        if self._cb_error is not None:
            return
        try:
            if kind == 0:
                if self._on_progress is not None:
                    self._on_progress(arg)
            else:
                if self._on_segment is not None:
                    n = w.whisper_full_n_segments_from_state(self._st)
                    start = self._segments_reported
                    self._segments_reported = n
                    for i in range(start, n):
                        self._on_segment(self._segment(i, False))
        except BaseException as exc:
            self._cb_error = exc
            self._ctl.abort = 1

    cdef void _call_logits_filter(self, list tokens, object logits) noexcept:
        if self._cb_error is not None or self._logits_filter is None:
            return
        try:
            self._logits_filter(tokens, logits)
        except BaseException as exc:
            self._cb_error = exc
            self._ctl.abort = 1

    # -- results -------------------------------------------------------------------
    cdef object _segment(self, int i, bint with_tokens):
        cdef w.whisper_state * st = self._st
        cdef w.whisper_context * c = self._owner._ctx
        cdef w.whisper_token_data td
        cdef int j, n
        cdef const char * txt = w.whisper_full_get_segment_text_from_state(st, i)
        tokens = None
        if with_tokens:
            tokens = []
            n = w.whisper_full_n_tokens_from_state(st, i)
            for j in range(n):
                td = w.whisper_full_get_token_data_from_state(st, i, j)
                tokens.append(RawToken(td.id, <bytes>w.whisper_full_get_token_text_from_state(c, st, i, j),
                                       td.p, td.plog, td.t0 * 0.01, td.t1 * 0.01,
                                       td.t_dtw_start * 0.01 if td.t_dtw_start >= 0 else None,
                                       td.t_dtw * 0.01 if td.t_dtw >= 0 else None))
        return RawSegment(
            w.whisper_full_get_segment_t0_from_state(st, i) * 0.01,
            w.whisper_full_get_segment_t1_from_state(st, i) * 0.01,
            (<bytes>txt).decode("utf-8", "replace"),
            w.whisper_full_get_segment_no_speech_prob_from_state(st, i),
            bool(w.whisper_full_get_segment_speaker_turn_next_from_state(st, i)),
            tokens,
        )

    def detect_language(self, samples=None, n_threads=1, *, mel=None):
        """Language probabilities of the first 30 s: {code: p}, best first.

        From ``samples`` (16 kHz float32: whisper.cpp computes their mel) or from ``mel``, a
        log-mel spectrogram of the call (float32, n_mel x n_len, whisperx_native.features),
        of which the first window's frames are used: the features are computed once."""
        cdef int nt = _threads(n_threads)
        cdef w.whisper_context * c
        cdef int n_lang = w.whisper_lang_max_id() + 1
        cdef float * probs
        cdef int rc = 0, best = 0, use_mel = mel is not None
        cdef const float[::1] pcm
        cdef const float[:, ::1] mel_view
        cdef const float * data = NULL
        cdef Py_ssize_t n = 0
        cdef int mel_n = 0, mel_len = 0
        if use_mel:
            import numpy as _np
            if samples is not None:
                raise OptionError("detect_language takes samples or a mel, not both")
            m = _np.asarray(mel)
            if m.dtype != _np.float32 or m.ndim != 2 or m.shape[1] == 0:
                raise OptionError(f"mel must be a 2-D float32 array (n_mel x frames), got {m.dtype} {m.shape}")
            mel_view = _np.ascontiguousarray(m[:, :WINDOW_FRAMES])
            mel_n, mel_len = mel_view.shape[0], mel_view.shape[1]
            data = &mel_view[0, 0]
        else:
            if samples is None:
                raise AudioError("no audio")
            pcm = samples
            n = pcm.shape[0]
            if n == 0:
                raise AudioError("no audio")
            data = &pcm[0]
        if not self._run_lock.acquire(False):
            raise BusyError("this state is already transcribing in another thread")
        try:
            self._check()
            c = self._owner._ctx
            if use_mel and mel_n != w.whisper_model_n_mels(c):
                raise OptionError(f"mel has {mel_n} bands, the model {w.whisper_model_n_mels(c)}")
            probs = <float *>malloc(n_lang * sizeof(float))
            if probs == NULL:
                raise MemoryError()
            try:
                with nogil:
                    if use_mel:
                        rc = w.whisper_set_mel_with_state(c, self._st, data, mel_len, mel_n)
                    else:
                        rc = w.whisper_pcm_to_mel_with_state(c, self._st, data, <int>n, nt)
                    if rc == 0:
                        best = w.whisper_lang_auto_detect_with_state(c, self._st, 0, nt, probs)
                check_status(-1 if rc != 0 else 0, "whisper_set_mel" if use_mel else "whisper_pcm_to_mel")
                check_status(best, "whisper_lang_auto_detect")
                out = {(<bytes>w.whisper_lang_str(i)).decode(): probs[i] for i in range(n_lang)}
            finally:
                free(probs)
        finally:
            self._run_lock.release()
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def full(self, const float[::1] samples, object opts, *, object on_progress=None,
             object on_segment=None, bint token_details=True, object mel=None, int mel_frames=0,
             object logits_filter=None):
        """Run ``whisper_full_with_state`` on 16 kHz mono float32 samples.

        ``opts`` is a whisperx_native.options.DecodeOptions-like object (attributes
        read below). Returns a dict of raw results; the GIL is released for the whole
        native run. Raises Cancelled, InferenceError, or what a callback raised.

        ``mel`` (float32, C-contiguous, n_mel x n_len, see whisperx_native.features)
        replaces whisper.cpp's own feature computation; ``mel_frames`` is how many of
        its frames cover the audio (whisper.cpp's n_len_org). A window reads the mel's
        least value past its end (vendor/patches/0032), so the 30 s of padding whisper.cpp's
        own features append may be left out but one frame of it. Not with offset_ms,
        duration_ms or token timestamps (those read the samples); ``samples`` are then
        not read (an empty array will do). A list holding the mel hands it over: the call
        takes it out, and the array is freed once whisper.cpp holds its copy, before the
        run (what the caller's features would have kept resident beside it)."""
        cdef w.whisper_full_params p
        cdef Py_ssize_t n = samples.shape[0]
        cdef const float * data = &samples[0] if n > 0 else NULL
        cdef const float[:, ::1] mel_view
        cdef const float * mel_data = NULL
        cdef int mel_len = 0, mel_n = 0
        cdef int rc = 0, rc_mel = 0, i, nseg
        cdef int64_t t_start, t_end
        cdef w.whisper_context * c

        if not self._run_lock.acquire(False):
            raise BusyError("this state is already transcribing in another thread")
        try:
            self._check()
            c = self._owner._ctx
            keep = []  # bytes objects whose buffers whisper.cpp reads during the run
            opts = _native_options(opts)  # validated here too: whisper.cpp trusts its parameters
            _fill_params(&p, opts, keep)
            _set_prefix(&p, c, opts.prefix, keep)
            if p.dtw_token_timestamps and self._owner.alignment_heads is None:
                raise OptionError("word timestamps need the model's alignment heads: load it with alignment_heads=...")
            # Threads: never more than the cores (whisper.cpp's spinning barriers would wait).
            p.n_threads = _threads(p.n_threads)
            if p.n_threads_decode > p.n_threads:
                p.n_threads_decode = p.n_threads
            if n > 2147483647:
                raise AudioError("audio too long for whisper.cpp (int32 sample count)")
            if mel is None and p.duration_ms > 0 and p.offset_ms + <int64_t>p.duration_ms > n * 1000 // SAMPLE_RATE:
                # past the end of the audio: whisper.cpp would encode silent windows up to
                # offset + duration (8 h of them for an 8 h duration): stop at the end instead
                p.duration_ms = 0
            if isinstance(mel, list):
                if len(mel) != 1:
                    raise OptionError("mel: an array, or a list holding one array")
                mel = mel.pop()
            if mel is not None:
                mel_view = mel
                mel_n, mel_len = mel_view.shape[0], mel_view.shape[1]
                if mel_n != w.whisper_model_n_mels(c):
                    raise OptionError(f"mel has {mel_n} bands, the model {w.whisper_model_n_mels(c)}")
                if not 0 < mel_frames <= mel_len or mel_frames > 2147483647 // 10:
                    raise OptionError(f"mel_frames must be in 1..{mel_len}, got {mel_frames}")
                if p.offset_ms or p.duration_ms or p.token_timestamps:
                    raise OptionError("a precomputed mel does not go with offset_ms, duration_ms or token timestamps")
                mel_data = &mel_view[0, 0]
                # whisper_set_mel counts every frame as audio: the padding must not be transcribed.
                p.duration_ms = mel_frames * 10
            self._on_progress = on_progress
            self._on_segment = on_segment
            self._logits_filter = logits_filter
            self._cb_error = None
            self._segments_reported = 0
            # Keep a cancel() that arrived before the run started: it cancels this run.
            abort = self._ctl.abort
            memset(&self._ctl, 0, sizeof(RunCtl))
            self._ctl.abort = abort
            self._ctl.pystate = <void *>self
            # Timing and abort hooks: measured to cost < 2 % of a jfk.wav run.
            p.encoder_begin_callback = _cb_encoder_begin
            p.encoder_begin_callback_user_data = &self._ctl
            p.logits_filter_callback = _cb_logits
            self._ctl.py_logits = logits_filter is not None
            p.logits_filter_callback_user_data = &self._ctl
            p.abort_callback = _cb_abort
            p.abort_callback_user_data = &self._ctl
            self._ctl.cr_threshold = float(getattr(opts, "compression_ratio_threshold", 0.0) or 0.0)
            if self._ctl.cr_threshold > 0:
                p.fallback_callback = _cb_fallback
                p.fallback_callback_user_data = &self._ctl
            if on_progress is not None:
                p.progress_callback = _cb_progress
                p.progress_callback_user_data = &self._ctl
            if on_segment is not None:
                p.new_segment_callback = _cb_new_segment
                p.new_segment_callback_user_data = &self._ctl
            ndec = p.beam_search.beam_size if p.strategy == w.WHISPER_SAMPLING_BEAM_SEARCH else 1
            if p.temperature_inc > 0 or p.temperature > 0:
                ndec = max(ndec, p.greedy.best_of)
            self._max_decoders = max(self._max_decoders, ndec)

            with nogil:
                t_start = ggml_time_us()
                self._ctl.t_phase = t_start
                if mel_data != NULL:
                    rc_mel = w.whisper_set_mel_with_state(c, self._st, mel_data, mel_len, mel_n)
            if mel_data != NULL:
                mel_view = None  # whisper.cpp has its copy: the array goes if the caller handed it over
                mel = None
            with nogil:
                if mel_data != NULL:
                    if rc_mel == 0:
                        rc = w.whisper_full_with_state(c, self._st, p, NULL, 0)
                else:
                    rc = w.whisper_full_with_state(c, self._st, p, data, <int>n)
                _phase_to(&self._ctl, PHASE_MEL)
                t_end = ggml_time_us()

            self._on_progress = None
            self._on_segment = None
            self._logits_filter = None
            if self._cb_error is not None:
                err, self._cb_error = self._cb_error, None
                raise err
            if self._ctl.abort:
                raise Cancelled("transcription cancelled")
            check_status(-1 if rc_mel != 0 else 0, "whisper_set_mel")
            check_status(rc, "whisper_full")

            nseg = w.whisper_full_n_segments_from_state(self._st)
            segments = [self._segment(i, token_details) for i in range(nseg)]
            lang = w.whisper_full_lang_id_from_state(self._st)
            return {
                "segments": segments,
                "language": (<bytes>w.whisper_lang_str(lang)).decode() if lang >= 0 else None,
                "timings": {
                    "mel_ms": self._ctl.mel_us / 1000.0,
                    "encode_ms": self._ctl.enc_us / 1000.0,
                    "decode_ms": self._ctl.dec_us / 1000.0,
                    "total_ms": (t_end - t_start) / 1000.0,
                    "n_encode": self._ctl.n_encode,
                },
            }
        finally:
            self._ctl.abort = 0
            self._ctl.pystate = NULL
            self._run_lock.release()

    def __repr__(self):
        return f"<whisperx_native._native.State {'closed' if self.closed else 'open'}>"


cdef int _fill_params(w.whisper_full_params * p, object o, list keep) except -1:
    """Translate a DecodeOptions-like object into whisper_full_params."""
    cdef int beam = int(o.beam_size)
    cdef int best_of = int(o.best_of)
    if beam < 1 or beam > MAX_DECODERS:
        raise OptionError(f"beam_size must be 1..{MAX_DECODERS}, got {beam}")
    if best_of < 1 or best_of > MAX_DECODERS:
        raise OptionError(f"best_of must be 1..{MAX_DECODERS}, got {best_of}")
    p[0] = w.whisper_full_default_params(
        w.WHISPER_SAMPLING_BEAM_SEARCH if beam > 1 else w.WHISPER_SAMPLING_GREEDY)
    p.n_threads = int(o.n_threads)
    if not 0 <= int(o.decode_threads) <= p.n_threads:
        raise OptionError(f"decode_threads must be 0 (= n_threads) .. n_threads ({p.n_threads}), "
                         f"got {o.decode_threads}")
    p.n_threads_decode = int(o.decode_threads)
    p.beam_search.beam_size = beam
    p.beam_search.patience = float(getattr(o, "patience", 1.0))
    p.length_penalty = float(getattr(o, "length_penalty", None) or -1.0)
    p.single_timestamp_skips_window = not bool(getattr(o, "speech_only", False))
    p.greedy.best_of = best_of
    p.translate = bool(o.translate)
    p.no_context = bool(o.no_context)
    if not o.condition_on_previous_text:
        p.n_max_text_ctx = 0
    p.no_timestamps = not bool(o.timestamps)
    p.single_segment = bool(o.single_segment)
    p.token_timestamps = bool(o.token_timestamps)
    p.dtw_token_timestamps = bool(getattr(o, "word_timestamps", False))
    p.window_start_limit_ms = int(getattr(o, "window_start_limit_ms", 0) or 0)
    p.max_tokens_per_second = float(getattr(o, "max_tokens_per_second", 0.0) or 0.0)
    p.max_len = int(o.max_segment_length)
    p.split_on_word = bool(o.split_on_word)
    p.max_tokens = int(o.max_tokens)
    p.audio_ctx = int(o.audio_ctx or 0)
    p.suppress_blank = bool(o.suppress_blank)
    p.suppress_nst = bool(o.suppress_non_speech)
    p.temperature = float(o.temperature)
    p.temperature_inc = float(o.temperature_increment)
    p.entropy_thold = float(o.entropy_threshold)
    p.logprob_thold = float(o.logprob_threshold)
    p.no_speech_thold = float(o.no_speech_threshold)
    p.offset_ms = int(o.offset_ms)
    p.duration_ms = int(o.duration_ms)
    p.print_progress = False
    p.print_realtime = False
    p.print_timestamps = False
    p.print_special = False
    if o.language is None:
        lang = b"auto"
    else:
        lang = str(o.language).encode()
    keep.append(lang)
    p.language = lang
    p.detect_language = False
    if o.initial_prompt:
        prompt = str(o.initial_prompt).encode()
        keep.append(prompt)
        p.initial_prompt = prompt
        p.carry_initial_prompt = bool(o.carry_initial_prompt)
    return 0


cdef int _set_prefix(w.whisper_full_params * p, w.whisper_context * c, object prefix, list keep) except -1:
    """DecodeOptions.prefix (validated: a text or ((start_s, end_s, text), ...)) as the tokens
    of vendor/patches/0019: timed text as <|start|> text <|end|>, whisper's own transcript
    form. When that is more than the room, the earliest timed texts are left out."""
    cdef array.array toks
    cdef int beg = w.whisper_token_beg(c), room = w.whisper_model_n_text_ctx(c) // 2 - 1
    if not prefix:
        return 0
    if isinstance(prefix, str):
        parts = [_tokenize(c, " " + prefix.strip())[-room:]]
    else:
        ts = lambda t: beg + min(WINDOW_FRAMES // 2, int(round(t / 0.02)))
        parts = [[ts(t0)] + _tokenize(c, " " + text.strip()) + [ts(t1)] for t0, t1, text in prefix]
        while parts and sum(len(x) for x in parts) > room:
            parts.pop(0)
    toks = array.array("i", [t for x in parts for t in x])
    if len(toks):
        keep.append(toks)
        p.prefix_tokens = <const w.whisper_token *> toks.data.as_ints
        p.prefix_n_tokens = len(toks)
    return 0


cdef list _tokenize(w.whisper_context * c, str text):
    cdef bytes data = text.encode("utf-8")
    cdef int n = len(data) + 1  # a token never holds less than one byte
    cdef array.array buf = array.array("i", bytes(4 * n))
    cdef int got = w.whisper_tokenize(c, data, <w.whisper_token *> buf.data.as_ints, n)
    if got < 0:  # -(tokens needed): cannot happen with a token per byte
        check_status(-1, "whisper_tokenize")
    return list(buf[:got])

include "quantize.pxi"
include "vad.pxi"
