# Silero voice-activity detection through whisper.cpp's whisper_vad_* runtime
# (included from _core.pyx).
#
# VadContext owns one whisper_vad_context: the Silero weights plus the LSTM state
# that carries over between calls when streaming. Policy (hysteresis, utterance
# ends, padding) lives in whisperx_native.realtime.vad; this layer only runs the
# network and hands the per-frame speech probabilities to Python.

from libc.string cimport memcpy

import numpy as _np


def _vad_samples(samples):
    """1-D float32 C-contiguous samples, or AudioError saying what is wrong."""
    from whisperx_native.errors import AudioError

    try:
        a = _np.asarray(samples)
    except Exception as exc:
        raise AudioError(f"cannot interpret {type(samples).__name__} as audio: {exc}") from None
    if a.ndim != 1:
        raise AudioError(f"VAD samples must be 1-D 16 kHz mono, got shape {a.shape}")
    if a.dtype.kind not in "fiu":
        raise AudioError(f"VAD samples must be float32 (or a real number type), got {a.dtype}")
    return _np.ascontiguousarray(a, dtype=_np.float32)


cdef w.whisper_vad_params _vad_params(threshold, min_speech_ms, min_silence_ms, max_speech_s, speech_pad_ms,
                                      overlap_s) except *:
    """whisper.cpp's segmentation parameters, each checked (OptionError) before C sees it."""
    from whisperx_native.validation import check_float, check_int
    from whisperx_native.errors import OptionError

    cdef w.whisper_vad_params vp = w.whisper_vad_default_params()
    vp.threshold = check_float(threshold, "threshold", 0.0, 1.0)
    vp.min_speech_duration_ms = check_int(min_speech_ms, "min_speech_ms", 0, 100_000)
    vp.min_silence_duration_ms = check_int(min_silence_ms, "min_silence_ms", 0, 100_000)
    vp.speech_pad_ms = check_int(speech_pad_ms, "speech_pad_ms", 0, 100_000)
    vp.samples_overlap = check_float(overlap_s, "overlap_s", 0.0, 10.0)
    if max_speech_s != float("inf"):
        max_speech_s = check_float(max_speech_s, "max_speech_s", 0.0, 1e9)
    if not max_speech_s > 0:
        raise OptionError(f"max_speech_s must be > 0 (inf: no limit), got {max_speech_s}")
    vp.max_speech_duration_s = max_speech_s
    return vp


cdef list _vad_segment_list(w.whisper_vad_segments * segs):
    """[(start_s, end_s), ...] of ``segs`` (whisper.cpp counts centiseconds); frees them."""
    cdef int i, nseg
    try:
        nseg = w.whisper_vad_segments_n_segments(segs)
        return [(w.whisper_vad_segments_get_segment_t0(segs, i) / 100.0,
                 w.whisper_vad_segments_get_segment_t1(segs, i) / 100.0) for i in range(nseg)]
    finally:
        w.whisper_vad_free_segments(segs)


cdef class VadContext:
    """One Silero VAD model (``whisper_vad_context``) and its streaming state.

    ``detect`` returns one speech probability per frame of ``frame_samples``
    (512 at 16 kHz: 32 ms) samples; a last partial frame is zero-padded by
    whisper.cpp, so streaming callers feed whole frames. One call at a time:
    a second thread gets ``BusyError``. The file is validated completely
    (whisperx_native.models.vad_file) before whisper.cpp reads it: it trusts its
    input. ``n_threads`` is clamped to the cores this process may use."""

    cdef w.whisper_vad_context * _vctx
    cdef readonly str path
    cdef readonly int n_threads
    cdef object _lock
    cdef object __weakref__

    def __cinit__(self):
        self._vctx = NULL
        self._lock = threading.Lock()

    def __init__(self, path, *, n_threads=1):
        from whisperx_native.errors import UsageError
        from whisperx_native.models.vad_file import validate_vad
        from whisperx_native.validation import check_path, clamp_threads

        cdef w.whisper_vad_context_params cparams = w.whisper_vad_default_context_params()
        if self._vctx != NULL:
            raise UsageError("VadContext.__init__ called twice")
        path = check_path(path, "path")
        n_threads = clamp_threads(n_threads)
        validate_vad(path)  # whisper.cpp aborts on a malformed file, or on a whisper model
        cdef bytes bpath = os.fsencode(path)
        cdef const char * cpath = bpath
        cparams.n_threads = n_threads
        cparams.use_gpu = False  # whisper.cpp forces CPU for VAD anyway
        self.path = os.fsdecode(bpath)
        self.n_threads = n_threads
        with _Capture() as lines:
            with nogil:
                self._vctx = w.whisper_vad_init_from_file_with_params(cpath, cparams)
                # The LSTM state comes out of the allocator uninitialised; detect(reset=False)
                # on a fresh context would start from garbage (measured: speech "heard" in silence).
                if self._vctx != NULL:
                    w.whisper_vad_reset_state(self._vctx)
        if self._vctx == NULL:
            detail = "; ".join(l.strip() for l in lines if "error" in l.lower() or "failed" in l.lower())
            raise ModelError(f"whisper.cpp could not load the VAD model {self.path}"
                             + (f": {detail}" if detail else ""))

    def __dealloc__(self):
        if self._vctx != NULL:
            w.whisper_vad_free(self._vctx)
            self._vctx = NULL

    cdef inline int _enter(self) except -1:
        # Every native call holds the lock: close() cannot free under a running call.
        if not self._lock.acquire(False):
            raise BusyError("this VAD context is in use by another thread")
        if self._vctx == NULL:
            self._lock.release()
            raise ClosedError("the VAD context is closed")
        return 0

    @property
    def closed(self):
        return self._vctx == NULL

    def close(self):
        """Free the model now (idempotent). Raises BusyError while a call runs."""
        if not self._lock.acquire(False):
            raise BusyError("cannot close a VAD context while it is running")
        try:
            if self._vctx != NULL:
                w.whisper_vad_free(self._vctx)
                self._vctx = NULL
        finally:
            self._lock.release()

    def __enter__(self):
        if self._vctx == NULL:
            raise ClosedError("the VAD context is closed")
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def reset(self):
        """Forget the LSTM state: the next ``detect(..., reset=False)`` starts fresh."""
        self._enter()
        try:
            with nogil:
                w.whisper_vad_reset_state(self._vctx)
        finally:
            self._lock.release()

    def detect(self, samples, reset=True):
        """Speech probability of each frame of 16 kHz float32 ``samples`` (a float32 array).

        ``reset=False`` continues from the state the previous call left, which is
        how a stream is fed chunk by chunk."""
        cdef const float[::1] view = _vad_samples(samples)
        cdef Py_ssize_t n = view.shape[0]
        cdef bint do_reset = bool(reset)
        cdef bint ok = True
        cdef int n_probs = 0
        cdef float[::1] out_view
        if n > 2147483647:
            raise AudioError("too many samples for one VAD call (at most 2**31 - 1)")
        if n == 0:
            return _np.zeros(0, _np.float32)
        self._enter()
        try:
            with nogil:
                if do_reset:
                    ok = w.whisper_vad_detect_speech(self._vctx, &view[0], <int>n)
                else:
                    ok = w.whisper_vad_detect_speech_no_reset(self._vctx, &view[0], <int>n)
                n_probs = w.whisper_vad_n_probs(self._vctx)
            if not ok:
                check_status(-1, "whisper_vad_detect_speech")
            out = _np.empty(n_probs, _np.float32)
            if n_probs:
                out_view = out
                memcpy(&out_view[0], w.whisper_vad_probs(self._vctx), n_probs * sizeof(float))
            return out
        finally:
            self._lock.release()

    def segments(self, samples, *, threshold=0.5, min_speech_ms=250, min_silence_ms=100,
                 max_speech_s=float("inf"), speech_pad_ms=30, overlap_s=0.1):
        """Speech segments of ``samples`` as [(start_s, end_s), ...] (whisper.cpp's own
        segmentation, as ``whisper-cli --vad`` uses it). Resets the streaming state.
        Durations in ms are 0..100000 (whisper.cpp multiplies them by the rate in int32)."""
        cdef w.whisper_vad_params vp = _vad_params(threshold, min_speech_ms, min_silence_ms, max_speech_s,
                                                   speech_pad_ms, overlap_s)
        cdef w.whisper_vad_segments * segs = NULL
        cdef const float[::1] view = _vad_samples(samples)
        cdef Py_ssize_t n = view.shape[0]
        cdef bint ok = True
        if n > 2147483647:
            raise AudioError("too many samples for one VAD call (at most 2**31 - 1)")
        if n == 0:
            return []
        self._enter()
        try:
            with nogil:
                ok = w.whisper_vad_detect_speech(self._vctx, &view[0], <int>n)
                if ok:
                    segs = w.whisper_vad_segments_from_probs(self._vctx, vp)
            if not ok or segs == NULL:
                check_status(-1, "whisper_vad_segments_from_samples")
            return _vad_segment_list(segs)
        finally:
            self._lock.release()

    def segments_from_probs(self, probs, *, threshold=0.5, min_speech_ms=250, min_silence_ms=100,
                            max_speech_s=float("inf"), speech_pad_ms=30, overlap_s=0.1):
        """The segmentation of :meth:`segments` applied to speech probabilities the caller
        gathered, one per frame from the start of the audio: those of ``detect`` fed block
        by block (blocks a multiple of the frame, ``reset=False``; the same numbers as one
        call over the whole audio), so a long file needs no more than a block in memory."""
        cdef w.whisper_vad_params vp = _vad_params(threshold, min_speech_ms, min_silence_ms, max_speech_s,
                                                   speech_pad_ms, overlap_s)
        cdef w.whisper_vad_segments * segs = NULL
        arr = _vad_samples(probs)
        if not _np.all(_np.isfinite(arr)):
            raise AudioError("VAD probabilities must be finite")
        cdef const float[::1] view = arr
        cdef Py_ssize_t n = view.shape[0]
        if n > 2147483647 // 512:
            raise AudioError("too many probabilities for one segmentation")
        if n == 0:
            return []
        self._enter()
        try:
            with nogil:
                segs = w.whisper_vad_segments_from_prob_array(self._vctx, &view[0], <int>n, vp)
            if segs == NULL:
                check_status(-1, "whisper_vad_segments_from_samples")
            return _vad_segment_list(segs)
        finally:
            self._lock.release()

    def __repr__(self):
        return f"<whisperx_native._native.VadContext {'closed' if self.closed else 'open'} {self.path!r}>"
