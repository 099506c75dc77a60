# Silero voice-activity detection through whisper.cpp's whisper_vad_* runtime
# (included from _core.pyx).
#
# VadContext owns one whisper_vad_context: the Silero weights plus the LSTM state
# that carries over between calls when streaming. Policy (hysteresis, utterance
# ends, padding) lives in whisperx_native.realtime.vad; this layer only runs the
# network and hands the per-frame speech probabilities to Python.

from libc.string cimport memcpy

import numpy as _np


cdef class VadContext:
    """One Silero VAD model (``whisper_vad_context``) and its streaming state.

    ``detect`` returns one speech probability per frame of ``frame_samples``
    (512 at 16 kHz: 32 ms) samples; a last partial frame is zero-padded by
    whisper.cpp, so streaming callers feed whole frames. One call at a time:
    a second thread gets ``BusyError``. The caller validates the file first
    (whisperx_native.realtime.vad): whisper.cpp trusts its input."""

    cdef w.whisper_vad_context * _vctx
    cdef readonly str path
    cdef readonly int n_threads
    cdef object _lock
    cdef object __weakref__

    def __cinit__(self):
        self._vctx = NULL
        self._lock = threading.Lock()

    def __init__(self, path, *, int n_threads=1):
        cdef w.whisper_vad_context_params cparams = w.whisper_vad_default_context_params()
        cdef bytes bpath = os.fsencode(path)
        cdef const char * cpath = bpath
        if self._vctx != NULL:
            raise RuntimeError("VadContext.__init__ called twice")
        if n_threads < 1:
            raise ValueError(f"n_threads must be >= 1, got {n_threads}")
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

    def detect(self, const float[::1] samples, bint reset=True):
        """Speech probability of each frame of 16 kHz float32 ``samples`` (a float32 array).

        ``reset=False`` continues from the state the previous call left, which is
        how a stream is fed chunk by chunk."""
        cdef Py_ssize_t n = samples.shape[0]
        cdef bint ok = True
        cdef int n_probs = 0
        cdef float[::1] out_view
        if n > 2147483647:
            raise ValueError("too many samples for one VAD call")
        if n == 0:
            return _np.zeros(0, _np.float32)
        self._enter()
        try:
            with nogil:
                if reset:
                    ok = w.whisper_vad_detect_speech(self._vctx, &samples[0], <int>n)
                else:
                    ok = w.whisper_vad_detect_speech_no_reset(self._vctx, &samples[0], <int>n)
                n_probs = w.whisper_vad_n_probs(self._vctx)
            if not ok:
                raise InferenceError(-1, "whisper_vad_detect_speech")
            out = _np.empty(n_probs, _np.float32)
            if n_probs:
                out_view = out
                memcpy(&out_view[0], w.whisper_vad_probs(self._vctx), n_probs * sizeof(float))
            return out
        finally:
            self._lock.release()

    def segments(self, const float[::1] samples, *, float threshold=0.5, int min_speech_ms=250,
                 int min_silence_ms=100, float max_speech_s=float("inf"), int speech_pad_ms=30,
                 float overlap_s=0.1):
        """Speech segments of ``samples`` as [(start_s, end_s), ...] (whisper.cpp's own
        segmentation, as ``whisper-cli --vad`` uses it). Resets the streaming state."""
        cdef w.whisper_vad_params vp = w.whisper_vad_default_params()
        cdef w.whisper_vad_segments * segs = NULL
        cdef Py_ssize_t n = samples.shape[0]
        cdef bint ok = True
        cdef int i, nseg
        if n > 2147483647:
            raise ValueError("too many samples for one VAD call")
        if n == 0:
            return []
        vp.threshold = threshold
        vp.min_speech_duration_ms = min_speech_ms
        vp.min_silence_duration_ms = min_silence_ms
        vp.max_speech_duration_s = max_speech_s
        vp.speech_pad_ms = speech_pad_ms
        vp.samples_overlap = overlap_s
        self._enter()
        try:
            with nogil:
                ok = w.whisper_vad_detect_speech(self._vctx, &samples[0], <int>n)
                if ok:
                    segs = w.whisper_vad_segments_from_probs(self._vctx, vp)
            if not ok or segs == NULL:
                raise InferenceError(-1, "whisper_vad_segments_from_samples")
            try:
                nseg = w.whisper_vad_segments_n_segments(segs)
                # whisper.cpp reports centiseconds
                return [(w.whisper_vad_segments_get_segment_t0(segs, i) / 100.0,
                         w.whisper_vad_segments_get_segment_t1(segs, i) / 100.0) for i in range(nseg)]
            finally:
                w.whisper_vad_free_segments(segs)
        finally:
            self._lock.release()

    def __repr__(self):
        return f"<whisperx_native._native.VadContext {'closed' if self.closed else 'open'} {self.path!r}>"
