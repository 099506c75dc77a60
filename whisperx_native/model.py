"""``Model``: a loaded Whisper model you can transcribe with, from any thread.

The native objects (whisperx_native._native) own memory; this class adds the policy:
file validation before whisper.cpp sees a file, a small pool of per-call states so
concurrent calls run in parallel, language detection with probabilities, presets,
and plain dataclass results.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Callable, Dict, List, Optional

import numpy as np

from . import _native, features
from .audio import SAMPLE_RATE, AudioLike, as_samples
from .cancel import CancelToken
from .vad import load_vad, plan_chunks, remap_segment
from .errors import ClosedError, OptionError
from .validation import check_bool, check_call, check_int, check_path
from .models import ggml_file
from .models.store import preferred_variant, resolve_model_path
from . import threads
from .options import N_AUDIO_CTX, WINDOW_SECONDS, DecodeOptions, resolve_options
from .result import Result, Segment, Token
from .words import NO_SPACE_LANGUAGES, DtwWords, TokenTimeWords, as_token, finish as finish_words

__all__ = ["Model", "Transcription"]

log = logging.getLogger("whisperx_native")

#: whisper.cpp skips input shorter than 100 ms (10 mel frames).
MIN_SAMPLES = SAMPLE_RATE // 10


class Model:
    """A Whisper model loaded into native memory.

    ``model`` is a path to a ggml file or a model name (``"tiny.en"``, ``"base"``)
    resolved through the model store. ``n_threads`` defaults to min(4, cores) and is
    never more than the cores. Use it as a context manager, or call ``close()``.
    Thread-safe: concurrent ``transcribe`` calls run in parallel on separate states.

    ``alignment_heads`` are the cross-attention heads ``word_timestamps=True`` reads:
    ``"auto"`` (default) takes the preset of a registry name, or of the one architecture a
    file's shape matches, else every head of the last half of the decoder layers; a preset
    name (``"tiny.en"`` ... ``"large-v3-turbo"``), ``("top", n)`` or ``(layer, head)`` pairs
    choose them; None loads the model without (word timestamps then raise OptionError).
    """

    def __init__(self, model: "str | os.PathLike", n_threads: Optional[int] = None, *,
                 flash_attn: bool = True, use_gpu: bool = True, max_idle_states: int = 1,
                 adapt_threads: bool = True, best_variant: bool = True, alignment_heads="auto") -> None:
        check_path(model, "model")  # a str or PathLike without NUL (a name or a file)
        flash_attn, use_gpu, adapt_threads = (check_bool(v, k) for v, k in (
            (flash_attn, "flash_attn"), (use_gpu, "use_gpu"), (adapt_threads, "adapt_threads")))
        #: The file actually loaded for a name: with ``best_variant``, the CPU's fastest
        #: form of it (models.store.preferred_variant: "-bf16q8" where bf16 is native).
        self.variant = str(preferred_variant(model, use_gpu=use_gpu) if best_variant else model)
        path = resolve_model_path(self.variant)
        self.info = ggml_file.validate(path)  # raises ModelError: whisper.cpp trusts its input
        self.path = str(path)
        self.name = str(model)
        self.n_threads = _clamp_threads(n_threads)
        self._explicit_threads = bool(n_threads)  # a count the caller chose is never adapted
        self.max_idle_states = check_int(max_idle_states, "max_idle_states", 0, None)
        #: Use only the cores other processes leave free (threads.for_load), checked
        #: at the start of each call. False: always n_threads (reproducible numerics).
        self.adapt_threads = bool(adapt_threads)
        #: The alignment heads of word timestamps, as given to the native context (None: none).
        self.alignment_heads = _alignment_heads(alignment_heads, self.name, self.info.hparams)
        self._ctx = _native.Context(self.path, use_gpu=use_gpu, flash_attn=flash_attn,
                                    alignment_heads=self.alignment_heads)
        self._lock = threading.Lock()
        self._idle: List[_native.State] = []
        self._running: set = set()
        self._closed = False
        self._mel_bank: Optional[features.MelBank] = None  # from info.mel_filters, on first use
        self._trimmed: set = set()  # states that ran a trimmed audio_ctx (see _acquire)

    # ------------------------------------------------------------------ features
    #: Compute log-mel features with numpy (features.py) instead of whisper.cpp's own
    #: FFT: same numbers, ~10x less CPU. False forces whisper.cpp's path.
    numpy_features = True
    #: Above this the numpy features (4 bytes x 80 x 100 per second, copied once more
    #: into the native state) are not worth their memory: whisper.cpp computes them.
    _FEATURES_MAX_S = 1800.0

    def _features(self, samples: np.ndarray, opts: DecodeOptions):
        """(mel, frames, ms) for State.full, or (None, 0, 0.0) where whisper.cpp must
        compute them: token timestamps and offset/duration read the samples natively."""
        if (not self.numpy_features or opts.token_timestamps or opts.offset_ms or opts.duration_ms
                or samples.size <= features.N_FFT or samples.size > self._FEATURES_MAX_S * SAMPLE_RATE):
            return None, 0, 0.0
        t0 = time.perf_counter()
        if self._mel_bank is None:
            self._mel_bank = features.MelBank(self.info.mel_filters)
        mel, frames = features.log_mel(samples, self._mel_bank)
        return mel, frames, (time.perf_counter() - t0) * 1000

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Free native memory. Running calls finish first; new calls raise ClosedError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
            self._trimmed.clear()
        for st in idle:
            st.close()
        self._ctx.close()

    @property
    def closed(self) -> bool:
        """True after ``close()``."""
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
        """True for multilingual models; False for English-only ones (``*.en``)."""
        return self._ctx.multilingual

    @property
    def model_type(self) -> str:
        """The size class: ``"tiny"``, ``"base"``, ``"small"``, ``"medium"``, ``"large"``."""
        return self._ctx.model_type

    def hparams(self) -> Dict[str, int]:
        """The model's hyperparameters as whisper.cpp reads them (``n_vocab``, ``n_audio_layer`` ...)."""
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
    def _acquire(self, full_ctx: bool = False) -> "_native.State":
        """A state from the idle pool, or a new one. ``full_ctx``: the run uses the whole
        1500-position encoder context, and needs a state that never ran a trimmed one.

        Why: with flash attention whisper.cpp pads the encoder's and the cross-attention's
        K/V to 1536 positions and reads the 36 padding rows unmasked. A fresh state has
        zeros there (what whisper-cli always sees); a run with a trimmed ``audio_ctx``
        leaves its own K/V in them, and every later full-context run on that state reads
        it (measured: tiny.en, 191 s file, WER 8.7 % -> 20.1 % after one 3 s utterance).
        Trimmed runs are multiples of 256 positions: no padding, safe on any state."""
        with self._lock:
            if self._closed:
                raise ClosedError("the model is closed")
            fits = [st for st in self._idle if not (full_ctx and st in self._trimmed)]
            if fits:
                # Trimmed runs take trimmed states first, keeping clean ones clean.
                st = max(fits, key=lambda s: s in self._trimmed) if not full_ctx else fits[-1]
                self._idle.remove(st)
                st.claim()  # a new owner: a late cancel aimed at the previous call is void
                self._running.add(st)
                return st
        st = self._ctx.new_state()  # allocation outside the lock: others keep going
        with self._lock:
            if self._closed:
                st.close()
                raise ClosedError("the model is closed")
            self._running.add(st)
        return st

    def _release(self, st: "_native.State", trimmed: bool = False) -> None:
        """Back to the idle pool; over ``max_idle_states``, trimmed states go first (a clean
        one serves both kinds of run)."""
        with self._lock:
            self._running.discard(st)
            if trimmed:
                self._trimmed.add(st)
            self._idle.append(st)
            evict = list(self._idle) if self._closed else []
            while len(self._idle) - len(evict) > self.max_idle_states:
                evict.append(next((s for s in self._idle if s in self._trimmed and s not in evict),
                                  next(s for s in self._idle if s not in evict)))
            for s in evict:
                self._idle.remove(s)
                self._trimmed.discard(s)
        for s in evict:
            s.close()

    def cancel(self) -> None:
        """Stop every running ``transcribe`` of this model; each raises ``Cancelled``."""
        with self._lock:  # each with its owner's generation: a state that went back to the pool
            running = [(st, st.generation) for st in self._running]  # and on to another call is left alone
        for st, generation in running:
            st.cancel(generation)

    # ------------------------------------------------------------------ work
    def transcribe(self, audio: AudioLike, *, preset: Optional[str] = None, sample_rate: int = SAMPLE_RATE,
                   progress_callback: Optional[Callable[[int], None]] = None,
                   segment_callback: Optional[Callable[[Segment], None]] = None,
                   cancel_token: Optional[CancelToken] = None, **options) -> Result:
        """Transcribe ``audio``: a path to an audio file (any format ``load_audio``
        reads) or a 1-D numpy array at 16 kHz.

        ``preset`` is ``"accurate"`` (default: beam search 5, temperature fallback) or
        ``"fast"`` (greedy, no fallback, trimmed encoder context on short audio);
        keyword ``options`` override single fields of whisperx_native.DecodeOptions
        (``language``, ``beam_size``, ``initial_prompt``, ``token_timestamps`` ...).
        ``word_timestamps=True`` fills each segment's ``words`` with times from the alignment
        heads' cross-attention (see whisperx_native/words.py); ``token_timestamps=True`` alone
        with words of whisper.cpp's token times.
        ``progress_callback(percent)`` and ``segment_callback(segment)`` are called
        from the transcribing thread; an exception raised in one stops the run and
        is re-raised here. ``cancel_token.cancel()`` (from any thread) stops this call
        with ``Cancelled``; ``Model.cancel()`` stops every running call.
        """
        check_call(cancel_token=cancel_token)
        return self._run(audio, preset, sample_rate, progress_callback, segment_callback, options,
                         on_state=cancel_token.bind if cancel_token is not None else None)

    def transcribe_iter(self, audio: AudioLike, *, preset: Optional[str] = None, sample_rate: int = SAMPLE_RATE,
                        progress_callback: Optional[Callable[[int], None]] = None,
                        **options) -> "Transcription":
        """Start transcribing ``audio`` in a background thread; iterate the segments
        as whisper.cpp emits them (in the spirit of faster-whisper's ``transcribe``).

            with model.transcribe_iter("long.mp3") as segments:
                for seg in segments:
                    print(seg.start, seg.text)
            print(segments.result.language)     # the full Result, tokens and words included

        Arguments are those of :meth:`transcribe`. Segments yielded early carry no
        tokens or words; ``.result`` (after the loop) has them. Errors of the run are
        raised from the loop. Leaving the ``with`` block or calling ``close()`` early
        cancels the run."""
        return Transcription(self, audio, preset, sample_rate, progress_callback, options)

    def _run(self, audio, preset, sample_rate, progress_callback, segment_callback, options,
             on_state: Optional[Callable[[object], None]] = None) -> Result:
        t0 = time.perf_counter()
        if self._closed:
            raise ClosedError("the model is closed")
        check_call(progress_callback, segment_callback, None, preset)
        from .compat import progress_logger  # faster-whisper's log_progress=True: a callback that logs

        progress_callback = progress_logger(options, progress_callback)
        samples = as_samples(audio, sample_rate)
        opts = self._plan_options(preset, options, samples.size)
        audio_s = samples.size / SAMPLE_RATE
        if samples.size < MIN_SAMPLES:
            log.warning("audio is %.0f ms long, shorter than whisper's 100 ms minimum: empty result",
                        samples.size / SAMPLE_RATE * 1000)
            return Result([], opts.language, None, {"audio_seconds": audio_s, "total_ms": 0.0,
                                                    "n_threads": opts.n_threads}, self.name)
        if _use_chunks(opts, audio_s):
            return self._run_chunked(samples, opts, t0, progress_callback, segment_callback, on_state)
        return self._run_single(samples, opts, t0, progress_callback, segment_callback, on_state)

    def _plan_options(self, preset, options, n_samples: int) -> DecodeOptions:
        """Preset + keywords → validated options for one call, with its thread count.

        An explicit thread count (``Model(n_threads=N)`` or ``transcribe(n_threads=N)``) is
        used as given (never more than the cores). Otherwise, with ``adapt_threads``, the
        call uses only the cores other processes leave free: results do not depend on the
        thread count (vendor/patches/0005), so this changes speed, never text."""
        explicit = bool(options.get("n_threads")) or self._explicit_threads
        opts = resolve_options(preset, options, n_samples, SAMPLE_RATE, self.n_threads)
        opts = self._check_language(opts)  # validation clamped the threads to the cores
        if opts.decode_threads > opts.n_threads:
            raise OptionError(f"decode_threads must be 0 (= n_threads) .. n_threads ({opts.n_threads}), "
                              f"got {opts.decode_threads}")
        if self.adapt_threads and not explicit and opts.n_threads > 1:
            n = threads.for_load(opts.n_threads)
            if n < opts.n_threads:
                log.debug("other processes keep cores busy: %d thread(s) instead of %d", n, opts.n_threads)
                opts = opts.replace(n_threads=n, decode_threads=min(opts.decode_threads, n))
        return opts

    def _language(self, st, samples, opts):
        """(options with the language decided, probabilities or None, ms): detection on the
        first 30 s of ``samples`` for a multilingual model asked for none."""
        if opts.language is not None:
            return opts, None, 0.0
        if not self.multilingual:
            return opts.replace(language="en"), None, 0.0
        td = time.perf_counter()
        probs = st.detect_language(samples[:int(WINDOW_SECONDS * SAMPLE_RATE)], opts.n_threads)
        detect_ms = (time.perf_counter() - td) * 1000
        opts = opts.replace(language=next(iter(probs)))
        return opts, {k: float(v) for k, v in probs.items() if v >= 1e-4}, detect_ms

    #: word_timestamps: move word boundaries next to a pause onto its edges (words.snap_to_pauses:
    #: a 10 ms loudness envelope of the audio). False: DTW times as openai-whisper gives them.
    snap_words_to_pauses = True

    def _words(self, opts, language):
        """What gives each segment its words: DTW times of the alignment heads
        (``word_timestamps``), whisper.cpp's token times (``token_timestamps``), or nothing."""
        if opts.word_timestamps:
            if self.alignment_heads is None:
                raise OptionError(f"word_timestamps needs the model's alignment heads, and {self.name} was loaded "
                                  "with alignment_heads=None: load it with alignment_heads='auto' (or a preset)")
            return DtwWords(self.info.token_eot, language)
        if not opts.token_timestamps:
            return None
        return _WordBuilder(self.info.token_eot, language in NO_SPACE_LANGUAGES)

    def _run_single(self, samples, opts, t0, progress_callback, segment_callback, on_state) -> Result:
        """One ``whisper_full`` over the whole audio (short clips, or ``vad=False``)."""
        def on_segment(raw):
            segment_callback(_segment(raw))

        full_ctx = opts.audio_ctx in (0, N_AUDIO_CTX)
        st = self._acquire(full_ctx)
        try:
            if on_state is not None:
                on_state(st)  # from here until the state goes back to the pool, the caller may cancel it
            opts, probs, detect_ms = self._language(st, samples, opts)
            mel, mel_frames, mel_ms = self._features(samples, opts)
            raw = st.full(samples, opts, on_progress=progress_callback,
                          on_segment=on_segment if segment_callback is not None else None,
                          mel=mel, mel_frames=mel_frames)
            del mel
        finally:
            if on_state is not None:
                on_state(None)
            self._release(st, trimmed=not full_ctx)

        total_ms = (time.perf_counter() - t0) * 1000
        t = raw["timings"]
        timings = self._timings(samples.size / SAMPLE_RATE, dict(t, mel_ms=t["mel_ms"] + mel_ms), detect_ms,
                                total_ms, opts.n_threads)
        language = raw["language"] or opts.language
        segments = _segments(raw["segments"], self._words(opts, language))
        if opts.word_timestamps:
            segments = finish_words(segments, samples.size / SAMPLE_RATE,
                                    samples if self.snap_words_to_pauses else None)
        return Result(segments, language, probs, timings, self.name)

    def _run_chunked(self, samples, opts, t0, progress_callback, segment_callback, on_state) -> Result:
        """Long-form: Silero VAD finds the speech, it is packed into chunks of at most one
        window, and the chunks are transcribed independently (no text carried from one to
        the next) on several states of this model at once, one thread each when the call
        has as many threads as chunks. Times are mapped back to the file."""
        audio_s = samples.size / SAMPLE_RATE
        tv = time.perf_counter()
        chunks = plan_chunks(_speech_segments(samples, opts), samples.size)
        vad_ms = (time.perf_counter() - tv) * 1000
        if not chunks:  # no speech at all: nothing to transcribe, nothing invented
            return Result([], opts.language, None, {"audio_seconds": audio_s, "vad_ms": vad_ms, "chunks": 0,
                                                    "total_ms": (time.perf_counter() - t0) * 1000,
                                                    "n_threads": opts.n_threads}, self.name)
        workers = min(len(chunks), opts.chunk_workers or opts.n_threads)
        per_worker = max(1, opts.n_threads // workers)
        group = _StateGroup()
        if on_state is not None:
            on_state(group)
        try:
            probs, detect_ms = None, 0.0
            if opts.language is None:
                first, _ = chunks[0].audio(samples)
                st = self._acquire(True)
                try:
                    group.add(st)
                    opts, probs, detect_ms = self._language(st, first, opts)
                finally:
                    group.discard(st)
                    self._release(st)
            run_opts = opts.replace(n_threads=per_worker, decode_threads=min(opts.decode_threads, per_worker),
                                    speech_only=True)
            results = self._map_chunks(samples, chunks, run_opts, workers, group, progress_callback, segment_callback)
        finally:
            if on_state is not None:
                on_state(None)

        segments: List[Segment] = []
        t = {"mel_ms": 0.0, "encode_ms": 0.0, "decode_ms": 0.0, "total_ms": 0.0, "n_encode": 0}
        for segs, timings in results:
            segments.extend(segs)
            for k in t:
                t[k] += timings[k]
        if opts.word_timestamps:  # words of neighbouring chunks in order, inside the file
            segments = finish_words(segments, audio_s, samples if self.snap_words_to_pauses else None)
        total_ms = (time.perf_counter() - t0) * 1000
        timings = self._timings(audio_s, t, detect_ms, total_ms, opts.n_threads, vad_ms=vad_ms,
                                chunks=len(chunks), workers=workers)
        return Result(segments, opts.language, probs, timings, self.name)

    def _timings(self, audio_s, native, detect_ms, total_ms, n_threads, **extra) -> Dict[str, float]:
        """A call's timings: ``native`` is whisper.cpp's phases (summed over chunks)."""
        return {
            "audio_seconds": audio_s,
            "load_ms": self._ctx.load_ms,
            "language_ms": detect_ms,
            "mel_ms": native["mel_ms"],
            "encode_ms": native["encode_ms"],
            "decode_ms": native["decode_ms"],
            "native_ms": native["total_ms"],
            "total_ms": total_ms,
            "n_encode": native["n_encode"],
            "n_threads": n_threads,
            **extra,  # the long-form path's vad_ms, chunks, workers
            "real_time_factor": total_ms / 1000 / audio_s,
        }

    def _map_chunks(self, samples, chunks, opts, workers, group, progress_callback, segment_callback):
        """Transcribe ``chunks`` on ``workers`` threads; the calling thread waits, hands out
        segments in order (those of the earliest unfinished chunk as whisper.cpp decodes
        them) and progress, and raises the first error (the others are cancelled).
        Returns [(segments, timings)] in chunk order."""
        done: Dict[int, object] = {}
        live: Dict[int, list] = {i: [] for i in range(len(chunks))}  # raw segments while decoding
        cond = threading.Condition()
        next_index = [0]
        words_of = self._words(opts, opts.language)
        full_ctx = opts.audio_ctx in (0, N_AUDIO_CTX)

        def work() -> None:
            st = None
            try:
                while True:
                    with cond:
                        if group.cancelled or any(isinstance(v, BaseException) for v in done.values()):
                            return
                        i = next_index[0]
                        if i >= len(chunks):
                            return
                        next_index[0] += 1

                    def on_segment(raw, i=i):
                        with cond:
                            live[i].append(raw)
                            cond.notify_all()

                    try:
                        if st is None:  # one state per worker for all its chunks
                            st = self._acquire(full_ctx)
                            group.add(st)
                        outcome = self._transcribe_chunk(st, samples, chunks[i], opts, words_of,
                                                         on_segment if segment_callback is not None else None)
                    except BaseException as exc:  # handed to the caller's thread
                        outcome = exc
                    with cond:
                        done[i] = outcome
                        cond.notify_all()
            finally:
                if st is not None:
                    group.discard(st)
                    self._release(st, trimmed=not full_ctx)

        threads = [threading.Thread(target=work, name=f"whisperx_native-chunk-{k}", daemon=True)
                   for k in range(workers)]
        for th in threads:
            th.start()
        results = []
        try:
            for i in range(len(chunks)):
                emitted = 0
                while True:
                    with cond:
                        while i not in done and len(live[i]) == emitted:
                            cond.wait()
                        outcome = done.get(i)
                        fresh = live[i][emitted:] if outcome is None else []
                    if segment_callback is not None and fresh:
                        to_original = chunks[i].time_map()
                        for raw in fresh:
                            segment_callback(_segment(remap_segment(raw, to_original)))
                        emitted += len(fresh)
                    if outcome is not None:
                        break
                if isinstance(outcome, BaseException):
                    raise outcome
                results.append(outcome)
                if segment_callback is not None:
                    for seg in outcome[0][emitted:]:
                        segment_callback(seg)
                if progress_callback is not None:
                    progress_callback(int(100 * (i + 1) / len(chunks)))
        except BaseException:
            group.cancel()
            raise
        finally:
            for th in threads:
                th.join()
        return results

    def _transcribe_chunk(self, st, samples, chunk, opts, words_of, on_segment=None):
        audio, to_original = chunk.audio(samples)
        mel, mel_frames, mel_ms = self._features(audio, opts)
        raw = st.full(audio, opts, mel=mel, mel_frames=mel_frames, on_segment=on_segment)
        del mel
        timings = dict(raw["timings"])
        timings["mel_ms"] += mel_ms
        # Words are made in file time: a DTW time in the silence joined between two pieces of
        # speech goes to the piece after it for a start, before it for an end (remap_segment).
        return _segments([remap_segment(s, to_original) for s in raw["segments"]], words_of, chunk.start), timings

    def _check_language(self, opts):
        lang = opts.language
        if lang is not None:
            lang = lang.lower()
            if _native.lang_id(lang) < 0:
                raise OptionError(f"unknown language {opts.language!r}; use a code like 'en', 'de', or 'auto'")
            opts = opts.replace(language=lang)
        if not self.multilingual:
            if lang not in (None, "en"):
                raise OptionError(f"{self.name} is an English-only model; it cannot transcribe {lang!r}")
            if opts.translate:
                raise OptionError(f"{self.name} is an English-only model; translate needs a multilingual one")
        return opts


#: Silero segmentation for long-form chunks, faster-whisper's batched pipeline's: a 160 ms
#: pause ends a segment, 400 ms of padding, speech split at the window's length;
#: vad_parameters override them.
CHUNK_VAD = {"min_silence_ms": 160, "speech_pad_ms": 400, "max_speech_s": WINDOW_SECONDS - 1.0}


def _use_chunks(opts: DecodeOptions, audio_s: float) -> bool:
    """The long-form path: asked for (``vad=True``), or by default (``vad=None``) for audio
    longer than one window when nothing needs whisper.cpp's own seek over the whole file."""
    if opts.vad is not None:
        return bool(opts.vad)
    return audio_s > WINDOW_SECONDS and not (opts.offset_ms or opts.duration_ms or opts.single_segment)


def _speech_segments(samples, opts):
    """Speech segments (seconds) of ``samples`` by Silero VAD (load_vad validates the file
    first: whisper.cpp trusts its input)."""
    vad, _info = load_vad(opts.vad_model, n_threads=1)
    try:
        return vad.segments(samples, **{**CHUNK_VAD, **dict(opts.vad_parameters)})
    finally:
        vad.close()


class _StateGroup:
    """The native states one chunked call is using, cancelled together (what a
    ``CancelToken`` binds to: ``cancel(generation)`` and ``generation`` as a State has)."""

    generation = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: Dict[object, int] = {}
        self.cancelled = False

    def add(self, st) -> None:
        with self._lock:
            self._states[st] = st.generation
            if self.cancelled:
                st.cancel(st.generation)

    def discard(self, st) -> None:
        with self._lock:
            self._states.pop(st, None)

    def cancel(self, generation=None) -> None:
        with self._lock:
            self.cancelled = True
            for st, gen in self._states.items():
                st.cancel(gen)


def _clamp_threads(n: Optional[int]) -> int:
    """A model's thread count: None or 0 for the default, never more than the cores (said)."""
    n = 0 if n is None else check_int(n, "n_threads", 0, None)
    if n == 0:
        return threads.default_threads()
    if threads.clamp(n) < n:
        log.warning("n_threads=%d is more than the %d available cores; using them all", n, threads.cpu_count())
    return threads.clamp(n)


#: Words from whisper.cpp's token times (``token_timestamps=True`` alone).
_WordBuilder = TokenTimeWords


def _alignment_heads(value, name: str, hp):
    """``Model(alignment_heads=...)`` → what the native context takes (see Model)."""
    if not (isinstance(value, str) and value == "auto"):
        return value  # None, a preset, ("top", n) or pairs: the native context checks them
    from .errors import ModelError
    from .models import registry

    try:
        return registry.get(name).alignment_heads  # a registry name: its architecture's preset
    except ModelError:
        pass
    heads, exact = registry.alignment_heads_for(hp)
    if not exact:
        log.info("%s: no alignment-head preset for a model of %d decoder layers x %d heads (%s, %d mel bands); "
                 "word timestamps read every head of the last %d layers", name, hp.n_text_layer, hp.n_text_head,
                 "multilingual" if hp.is_multilingual else "English-only", hp.n_mels, heads[1])
    return heads


def _segments(raws, word_builder=None, last_speech: float = 0.0) -> List[Segment]:
    """Segments of raw native ones; DTW words are made for all of a run's segments together
    (openai-whisper's heuristics look at a window's words and the speech before them)."""
    if isinstance(word_builder, DtwWords):
        return [_segment(raw, timed=timed) for raw, timed in zip(raws, word_builder.build(raws, last_speech))]
    return [_segment(raw, word_builder) for raw in raws]


def _segment(raw, word_builder: "Optional[TokenTimeWords]" = None, timed=None) -> Segment:
    t0, t1, text, nsp, turn, toks = raw
    tokens = [] if not toks else [
        Token(t.id, t.text.decode("utf-8", "replace"), t.p, t.logprob, round(t.t0, 3), round(t.t1, 3))
        for t in map(as_token, toks)]
    words = word_builder.build(toks) if word_builder is not None and toks else []
    if timed is not None:  # (start, end, words) of DtwWords
        t0, t1, words = timed
    return Segment(round(t0, 3), round(t1, 3), text, nsp, turn, tokens, words)


class Transcription:
    """The iterator ``Model.transcribe_iter`` returns: segments as they are decoded.

    Iterate it for ``Segment`` objects (text and times); after the last one,
    ``result`` holds the complete ``Result``. ``close()`` (or leaving a ``with``
    block) cancels a run still going and waits for it to stop."""

    def __init__(self, model: Model, audio, preset, sample_rate, progress_callback, options) -> None:
        self.result: Optional[Result] = None
        self._finished = False
        # The worker holds only the control and the queue, never self: an abandoned
        # Transcription is collected, and its __del__ cancels the run.
        self._control = ctl = CancelToken()
        self._queue = q = queue.Queue()

        def progress(percent: int) -> None:
            ctl.check()
            if progress_callback is not None:
                progress_callback(percent)

        def segment(seg: Segment) -> None:
            ctl.check()
            q.put(seg)

        def work() -> None:
            try:
                outcome = model._run(audio, preset, sample_rate, progress, segment, options, on_state=ctl.bind)
            except BaseException as exc:  # handed to the consumer, raised from the loop
                outcome = exc
            q.put(("end", outcome))

        self._thread = threading.Thread(target=work, name="whisperx_native-transcribe")
        self._thread.start()

    def __iter__(self) -> "Transcription":
        return self

    def __next__(self) -> Segment:
        if self._finished:
            raise StopIteration
        item = self._queue.get()
        if isinstance(item, Segment):
            return item
        self._finished = True
        self._thread.join()
        outcome = item[1]
        if isinstance(outcome, BaseException):
            raise outcome
        self.result = outcome
        raise StopIteration

    def close(self) -> None:
        """Cancel the run if it is still going and wait until it has stopped."""
        if not self._finished:
            self._finished = True
            self._control.cancel()
            self._thread.join()

    def __enter__(self) -> "Transcription":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self._control.cancel()
