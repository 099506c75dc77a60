"""``Model``: a loaded Whisper model you can transcribe with, from any thread.

The native objects (whisperx_native._native) own memory; this class adds the policy:
file validation before whisper.cpp sees a file, a small pool of per-call states so
concurrent calls run in parallel, language detection with probabilities, presets,
and plain dataclass results.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable, Dict, List, Optional

from . import _native
from .audio import SAMPLE_RATE, AudioLike, as_samples
from .errors import ClosedError
from .models import ggml_file
from .models.store import resolve_model_path
from .options import cpu_count, default_threads, resolve_options
from .result import Result, Segment, Token

__all__ = ["Model"]

log = logging.getLogger("whisperx_native")

#: whisper.cpp skips input shorter than 100 ms (10 mel frames).
MIN_SAMPLES = SAMPLE_RATE // 10


class Model:
    """A Whisper model loaded into native memory.

    ``model`` is a path to a ggml file or a model name (``"tiny.en"``, ``"base"``)
    resolved through the model store. ``n_threads`` defaults to min(4, cores) and is
    never more than the cores. Use it as a context manager, or call ``close()``.
    Thread-safe: concurrent ``transcribe`` calls run in parallel on separate states.
    """

    def __init__(self, model: "str | os.PathLike", n_threads: Optional[int] = None, *,
                 flash_attn: bool = True, use_gpu: bool = True, max_idle_states: int = 1) -> None:
        path = resolve_model_path(model)
        self.info = ggml_file.validate(path)  # raises ModelError: whisper.cpp trusts its input
        self.path = str(path)
        self.name = str(model)
        self.n_threads = _clamp_threads(n_threads)
        self.max_idle_states = max(0, int(max_idle_states))
        self._ctx = _native.Context(self.path, use_gpu=use_gpu, flash_attn=flash_attn)
        self._lock = threading.Lock()
        self._idle: List[_native.State] = []
        self._running: set = set()
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Free native memory. Running calls finish first; new calls raise ClosedError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
        for st in idle:
            st.close()
        self._ctx.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.info.model_type}, {self.n_threads} threads"
        return f"<whisperx_native.Model {self.name!r} ({state})>"

    # ------------------------------------------------------------------ facts
    @property
    def multilingual(self) -> bool:
        return self._ctx.multilingual

    @property
    def model_type(self) -> str:
        return self._ctx.model_type

    def hparams(self) -> Dict[str, int]:
        return self._ctx.hparams()

    def memory(self) -> Dict[str, object]:
        """Native memory as whisper.cpp accounts it, in bytes.

        ``weights``: model tensors (all backend buffers); ``states``: one dict per
        live state (KV caches, compute buffers); ``total``: the sum."""
        weights = sum(v for k, v in self._ctx.sizes.items() if k.endswith("total_size"))
        with self._lock:
            states = list(self._idle) + list(self._running)
        per_state = [st.memory() for st in states if not st.closed]
        total = weights + sum(sum(d.values()) for d in per_state)
        return {"weights": weights, "states": per_state, "total": total}

    # ------------------------------------------------------------------ states
    def _acquire(self) -> "_native.State":
        with self._lock:
            if self._closed:
                raise ClosedError("the model is closed")
            st = self._idle.pop() if self._idle else None
            if st is not None:
                self._running.add(st)
                return st
        st = self._ctx.new_state()  # allocation outside the lock: others keep going
        with self._lock:
            if self._closed:
                st.close()
                raise ClosedError("the model is closed")
            self._running.add(st)
        return st

    def _release(self, st: "_native.State") -> None:
        with self._lock:
            self._running.discard(st)
            if not self._closed and len(self._idle) < self.max_idle_states:
                self._idle.append(st)
                return
        st.close()

    def cancel(self) -> None:
        """Stop every running ``transcribe`` of this model; each raises ``Cancelled``."""
        with self._lock:
            running = list(self._running)
        for st in running:
            st.cancel()

    # ------------------------------------------------------------------ work
    def transcribe(self, audio: AudioLike, *, preset: Optional[str] = None, sample_rate: int = SAMPLE_RATE,
                   progress_callback: Optional[Callable[[int], None]] = None,
                   segment_callback: Optional[Callable[[Segment], None]] = None,
                   **options) -> Result:
        """Transcribe ``audio`` (a WAV path or a 1-D numpy array at 16 kHz).

        ``preset`` is ``"accurate"`` (default: beam search 5, temperature fallback) or
        ``"fast"`` (greedy, no fallback, trimmed encoder context on short audio);
        keyword ``options`` override single fields of whisperx_native.DecodeOptions
        (``language``, ``beam_size``, ``initial_prompt``, ``token_timestamps`` ...).
        ``progress_callback(percent)`` and ``segment_callback(segment)`` are called
        from the transcribing thread; an exception raised in one stops the run and
        is re-raised here.
        """
        t0 = time.perf_counter()
        if self._closed:
            raise ClosedError("the model is closed")
        samples = as_samples(audio, sample_rate)
        opts = resolve_options(preset, options, samples.size, SAMPLE_RATE, self.n_threads)
        opts = self._check_language(opts)
        if opts.n_threads > cpu_count():
            opts = opts.replace(n_threads=cpu_count())
        audio_s = samples.size / SAMPLE_RATE
        if samples.size < MIN_SAMPLES:
            log.warning("audio is %.0f ms long, shorter than whisper's 100 ms minimum: empty result",
                        audio_s * 1000)
            return Result([], opts.language, None, {"audio_seconds": audio_s, "total_ms": 0.0}, self.name)

        on_segment = None
        if segment_callback is not None:
            def on_segment(raw):
                segment_callback(_segment(raw))

        st = self._acquire()
        try:
            probs = None
            detect_ms = 0.0
            if opts.language is None:
                if self.multilingual:
                    td = time.perf_counter()
                    probs = st.detect_language(samples, opts.n_threads)
                    detect_ms = (time.perf_counter() - td) * 1000
                    opts = opts.replace(language=next(iter(probs)))
                else:
                    opts = opts.replace(language="en")
            raw = st.full(samples, opts, on_progress=progress_callback, on_segment=on_segment)
        finally:
            self._release(st)

        total_ms = (time.perf_counter() - t0) * 1000
        t = raw["timings"]
        timings = {
            "audio_seconds": audio_s,
            "load_ms": self._ctx.load_ms,
            "language_ms": detect_ms,
            "mel_ms": t["mel_ms"],
            "encode_ms": t["encode_ms"],
            "decode_ms": t["decode_ms"],
            "native_ms": t["total_ms"],
            "total_ms": total_ms,
            "n_encode": t["n_encode"],
            "real_time_factor": total_ms / 1000 / audio_s,
        }
        if probs is not None:
            probs = {k: float(v) for k, v in probs.items() if v >= 1e-4}
        return Result([_segment(s) for s in raw["segments"]], raw["language"] or opts.language,
                      probs, timings, self.name)

    def _check_language(self, opts):
        lang = opts.language
        if lang is not None:
            lang = lang.lower()
            if _native.lang_id(lang) < 0:
                raise ValueError(f"unknown language {opts.language!r}; use a code like 'en', 'de', or 'auto'")
            opts = opts.replace(language=lang)
        if not self.multilingual:
            if lang not in (None, "en"):
                raise ValueError(f"{self.name} is an English-only model; it cannot transcribe {lang!r}")
            if opts.translate:
                raise ValueError(f"{self.name} is an English-only model; translate needs a multilingual one")
        return opts


def _clamp_threads(n: Optional[int]) -> int:
    cores = cpu_count()
    if n is None or n == 0:
        return default_threads()
    n = int(n)
    if n < 1:
        raise ValueError(f"n_threads must be >= 1, got {n}")
    if n > cores:
        log.warning("n_threads=%d is more than the %d available cores; using %d", n, cores, cores)
        return cores
    return n


def _segment(raw) -> Segment:
    t0, t1, text, nsp, turn, toks = raw
    tokens = [] if not toks else [
        Token(tid, tb.decode("utf-8", "replace"), p, plog, a, b) for (tid, tb, p, plog, a, b, _dtw) in toks]
    return Segment(t0, t1, text, nsp, turn, tokens)
