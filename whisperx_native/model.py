"""``Model``: a loaded Whisper model you can transcribe with, from any thread.

A thin facade over the two layers below it: the engine (engine.py: the native context and
its pool of states, runs on them) and the pipeline (pipeline.py: options, threads,
language, VAD chunks, features, results). ``Model`` validates and loads the file, then for
each call asks the pipeline for a plan and has the engine run it.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Callable, Dict, List, Optional

from . import engine, filestream, pipeline
from ._heap import keep_mmap_threshold, release_free_heap
from .audio import SAMPLE_RATE, AudioLike, as_samples
from .cancel import CancelToken
from .engine import Engine, StateGroup
from .errors import Cancelled, ClosedError
from .models import ggml_file
from .models.store import preferred_variant, resolve_model_path
from .result import Result, Segment
from .validation import check_bool, check_call, check_int, check_path
from .vad import remap_segment
from .vad.chunks import settled
from .words import finish as finish_words

__all__ = ["Model", "Transcription"]

log = logging.getLogger("whisperx_native")


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

    ``kv_type`` is the type of the attention caches' K and V: ``"auto"`` (default) q8_0 where
    the CPU reads them (flash attention, no GPU backend) and they are large (small and up:
    half their memory), else f16; ``"f16"`` or ``"q8_0"`` set both, a ``(K, V)`` pair each.
    """

    #: Compute log-mel features with numpy (features.py, pipeline.Features) instead of
    #: whisper.cpp's own FFT: same numbers, ~10x less CPU. False forces whisper.cpp's path.
    numpy_features = True
    #: word_timestamps: move word boundaries next to a pause onto its edges (words.snap_to_pauses:
    #: a 10 ms loudness envelope of the audio). False: DTW times as openai-whisper gives them.
    snap_words_to_pauses = True

    def __init__(self, model: "str | os.PathLike", n_threads: Optional[int] = None, *,
                 flash_attn: bool = True, use_gpu: bool = True, max_idle_states: int = 1,
                 adapt_threads: bool = True, best_variant: bool = True, alignment_heads="auto",
                 kv_type="auto") -> None:
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
        self.n_threads = pipeline.clamp_threads(n_threads)
        self._explicit_threads = bool(n_threads)  # a count the caller chose is never adapted
        max_idle_states = check_int(max_idle_states, "max_idle_states", 0, None)
        #: Use only the cores other processes leave free (threads.for_load), checked
        #: at the start of each call. False: always n_threads (reproducible numerics).
        self.adapt_threads = bool(adapt_threads)
        #: The alignment heads of word timestamps, as given to the native context (None: none).
        self.alignment_heads = pipeline.alignment_heads_for(alignment_heads, self.name, self.info.hparams)
        #: The attention caches' (K, V) types as loaded ("f16" or "q8_0" each).
        self.kv_type = pipeline.kv_type_for(kv_type, use_gpu=use_gpu, flash_attn=flash_attn, hp=self.info.hparams)
        keep_mmap_threshold()  # freed buffers of a chunk's size go back at once (_heap)
        self._engine = Engine(self.path, use_gpu=use_gpu, flash_attn=flash_attn, alignment_heads=self.alignment_heads,
                              max_idle_states=max_idle_states, info=self.info, kv_type=self.kv_type)
        self._features = pipeline.Features(self.info.mel_filters)

    # ------------------------------------------------------------------ lifecycle
    @property
    def max_idle_states(self) -> int:
        """Idle native states kept for the next calls (more are freed as calls end)."""
        return self._engine.pool.max_idle

    @max_idle_states.setter
    def max_idle_states(self, n: int) -> None:
        self._engine.pool.max_idle = check_int(n, "max_idle_states", 0, None)

    def close(self) -> None:
        """Free native memory. Running calls finish first; new calls raise ClosedError."""
        self._engine.close()

    @property
    def closed(self) -> bool:
        """True after ``close()``."""
        return self._engine.pool.closed

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.info.model_type}, {self.n_threads} threads"
        return f"<whisperx_native.Model {self.name!r} ({state})>"

    # ------------------------------------------------------------------ facts
    @property
    def multilingual(self) -> bool:
        """True for multilingual models; False for English-only ones (``*.en``)."""
        return self._engine.ctx.multilingual

    @property
    def model_type(self) -> str:
        """The size class: ``"tiny"``, ``"base"``, ``"small"``, ``"medium"``, ``"large"``."""
        return self._engine.ctx.model_type

    def hparams(self) -> Dict[str, int]:
        """The model's hyperparameters as whisper.cpp reads them (``n_vocab``, ``n_audio_layer`` ...)."""
        return self._engine.ctx.hparams()

    def memory(self) -> Dict[str, object]:
        """Native memory as whisper.cpp accounts it, in bytes.

        ``weights``: model tensors (all backend buffers); ``states``: one dict per
        live state (KV caches, compute buffers); ``total``: the sum."""
        return self._engine.memory()

    def cancel(self) -> None:
        """Stop every running ``transcribe`` of this model; each raises ``Cancelled``."""
        self._engine.pool.cancel_running()

    # ------------------------------------------------------------------ work
    def transcribe(self, audio: AudioLike, *, preset: Optional[str] = None, sample_rate: int = SAMPLE_RATE,
                   progress_callback: Optional[Callable[[int], None]] = None,
                   segment_callback: Optional[Callable[[Segment], None]] = None,
                   cancel_token: Optional[CancelToken] = None, **options) -> Result:
        """Transcribe ``audio``: a path to an audio file (any format ``load_audio``
        reads) or a 1-D numpy array at 16 kHz. A file longer than one window on the long-form
        path (the default) is never held in memory: it is decoded block by block into a
        temporary file on disk while the Silero VAD runs over it (whisperx_native/filestream.py),
        for the same transcript as its samples in memory; with ``vad=False`` (whisper.cpp's own
        seek over the whole file) a file is decoded into memory whole.

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
        if self.closed:
            raise ClosedError("the model is closed")
        check_call(progress_callback, segment_callback, None, preset)
        from .compat import progress_logger  # faster-whisper's log_progress=True: a callback that logs

        progress_callback = progress_logger(options, progress_callback)
        if isinstance(audio, (str, os.PathLike)):
            return self._run_path(audio, preset, options, t0, progress_callback, segment_callback, on_state)
        return self._run_samples(as_samples(audio, sample_rate), preset, options, t0, progress_callback,
                                 segment_callback, on_state)

    def _resolve(self, preset, options):
        return pipeline.resolve(preset, options, n_threads=self.n_threads,
                                explicit_threads=self._explicit_threads, adapt_threads=self.adapt_threads,
                                multilingual=self.multilingual, name=self.name)

    def _run_path(self, path, preset, options, t0, progress_callback, segment_callback, on_state) -> Result:
        """A file. Once it is longer than one window and the call takes the long-form path,
        its samples go to a disk spool as they are decoded, the VAD (and, for words snapped
        to pauses, the loudness envelope) fed on the way (filestream.read_path); a cancel
        stops the decode between blocks. Otherwise its samples in memory, as before.

        The file is read on a thread of its own (:class:`_ReadAhead`): the chunks the rest of
        the file can no longer change are transcribed while it is still read and its VAD runs."""
        snap = self.snap_words_to_pauses

        def decide(n: int):
            opts = self._resolve(preset, options)
            if not pipeline.use_chunks(opts, n / SAMPLE_RATE):
                return None  # one whisper_full over the whole file: it needs the samples whole
            return filestream.StreamPlan(opts.vad_model, pipeline.vad_parameters(opts),
                                         bool(opts.word_timestamps and snap), opts)

        # What a CancelToken (and Model.cancel) reaches from the first block read to the last
        # chunk: the states the call takes later join it, so no cancel falls between the two.
        group = StateGroup()
        if on_state is not None:
            on_state(group)
        try:
            with self._engine.pool.watch(group):
                ahead = _ReadAhead(path, decide, group, self.multilingual, preset)
                try:
                    if ahead.wait_start():  # chunks settled while the file is read
                        return self._run_chunked(ahead.plan, ahead.spool, t0, progress_callback, segment_callback,
                                                 on_state, group=group, ahead=ahead)
                    read = ahead.result()
                except BaseException:
                    group.cancel()  # the call failed or was interrupted: the read stops at its next block
                    raise
                finally:
                    ahead.close()
                with read:
                    if group.cancelled:
                        raise Cancelled("transcription cancelled")
                    if not read.streamed:
                        return self._run_samples(read.samples, preset, options, t0, progress_callback,
                                                 segment_callback, on_state, group)
                    plan = pipeline.make_plan(read.opts, read.samples.size, multilingual=self.multilingual,
                                              preset=preset, speech=read.speech, vad_ms=read.vad_ms)
                    return self._run_chunked(plan, read.samples, t0, progress_callback, segment_callback, on_state,
                                             gaps=read.gaps, group=group)
        finally:
            if on_state is not None:
                on_state(None)

    def _run_samples(self, samples, preset, options, t0, progress_callback, segment_callback, on_state,
                     group: Optional[StateGroup] = None) -> Result:
        opts = self._resolve(preset, options)
        audio_s = samples.size / SAMPLE_RATE
        if samples.size < pipeline.MIN_SAMPLES:
            log.warning("audio is %.0f ms long, shorter than whisper's 100 ms minimum: empty result",
                        samples.size / SAMPLE_RATE * 1000)
            return Result([], opts.language, None, {"audio_seconds": audio_s, "total_ms": 0.0,
                                                    "n_threads": opts.n_threads}, self.name)
        if not pipeline.use_chunks(opts, audio_s):
            plan = pipeline.make_plan(opts, samples.size, multilingual=self.multilingual, preset=preset)
            return self._run_single(plan, samples, t0, progress_callback, segment_callback, on_state, group)
        tv = time.perf_counter()
        speech = engine.speech_segments(samples, opts.vad_model, pipeline.vad_parameters(opts))
        plan = pipeline.make_plan(opts, samples.size, multilingual=self.multilingual, preset=preset, speech=speech,
                                  vad_ms=(time.perf_counter() - tv) * 1000)
        return self._run_chunked(plan, samples, t0, progress_callback, segment_callback, on_state, group=group)

    def _words(self, opts, language):
        """What gives each segment its words (pipeline.word_builder)."""
        return pipeline.word_builder(opts, language, self.info.token_eot, self.alignment_heads, self.name)

    def _finish_words(self, plan, samples, segments, gaps=None):
        """word_timestamps: words in order (those of neighbouring chunks too), inside the file;
        ``gaps``: the file's pauses when they were found while it was read (filestream)."""
        if not plan.opts.word_timestamps:
            return segments
        if not self.snap_words_to_pauses:
            return finish_words(segments, plan.audio_s)
        if gaps is None and isinstance(samples, filestream.Spool):
            gaps = filestream.pauses_of(samples)
        if gaps is not None:
            return finish_words(segments, plan.audio_s, gaps=gaps)
        return finish_words(segments, plan.audio_s, samples)

    def _result(self, plan, segments, language, probs, native, detect_ms, total_ms, **extra) -> Result:
        timings = pipeline.timings(plan.audio_s, native, detect_ms, total_ms, plan.n_threads,
                                   self._engine.load_ms, **extra)
        return Result(segments, language, probs, timings, self.name)

    def _run_single(self, plan, samples, t0, progress_callback, segment_callback, on_state,
                    group: Optional[StateGroup] = None) -> Result:
        """One ``whisper_full`` over the whole audio (short clips, or ``vad=False``). ``group``:
        the call's, which a cancel reaches (its caller told ``on_state``), else the state itself."""
        opts, probs, detect_ms = plan.run_opts.replace(language=plan.language), None, 0.0
        audio, to_original = pipeline.around_speech(samples, opts)  # where every copy has it

        def in_clip(raw):
            return raw if to_original is None else remap_segment(raw, to_original)

        def on_segment(raw):
            segment_callback(pipeline.segment(in_clip(raw)))

        with self._engine.state(plan.full_ctx, on_state if group is None else None, group=group) as st:
            mel, mel_frames, mel_ms = self._features.compute(audio, opts, self.numpy_features)
            if plan.detect:  # on the first window of the one mel (features computed once)
                language, probs, detect_ms = pipeline.detect_language(st, audio, opts.n_threads, mel)
                opts = opts.replace(language=language)
            release_free_heap()  # what reading and the features freed, before the run's own peak
            if mel is not None:
                mel = [mel]  # handed over: freed once whisper.cpp has its copy (pipeline.full_run)
            raw, native = pipeline.full_run(st, audio, opts, plan.trim_ctx, on_progress=progress_callback,
                                            on_segment=on_segment if segment_callback is not None else None,
                                            mel=mel, mel_frames=mel_frames)
        del audio
        total_ms = (time.perf_counter() - t0) * 1000  # the native run's end: segments are made after
        native["mel_ms"] += mel_ms
        language = raw["language"] or opts.language
        raws = [in_clip(r) for r in raw["segments"]]
        segments = self._finish_words(plan, samples, pipeline.segments(raws, self._words(opts, language)))
        return self._result(plan, segments, language, probs, native, detect_ms, total_ms)

    def _run_chunked(self, plan, samples, t0, progress_callback, segment_callback, on_state, gaps=None,
                     group: Optional[StateGroup] = None, ahead: "Optional[_ReadAhead]" = None) -> Result:
        """Long-form: Silero VAD found the speech, packed into chunks of at most one window
        (the plan); the chunks are transcribed independently (no text carried from one to
        the next) on several states of this model at once, one thread each when the call
        has as many threads as chunks. Times are mapped back to the file. ``samples``: an
        array or a long file's filestream.Spool (each chunk reads its pieces back).
        ``ahead``: the file is still being read, its chunks come as they settle (``plan`` is
        the plan so far; the final one, its gaps and its spool come with the last chunk)."""
        chunks = plan.chunks if ahead is None else ahead.chunks
        if not chunks:  # no speech at all: nothing to transcribe, nothing invented
            return Result([], plan.opts.language, None,
                          {"audio_seconds": plan.audio_s, "vad_ms": plan.vad_ms, "chunks": 0,
                           "total_ms": (time.perf_counter() - t0) * 1000, "n_threads": plan.n_threads}, self.name)
        own = group is None  # else the caller's group, which on_state already knows
        if own:
            group = StateGroup()
            if on_state is not None:
                on_state(group)
        try:
            language, probs, detect_ms = plan.language, None, 0.0
            if plan.detect:  # on a clean state: a full-context run
                first, _ = chunks[0].audio(samples)
                with self._engine.state(True, group=group) as st:
                    language, probs, detect_ms = pipeline.detect_language(st, first, plan.n_threads)
            opts = plan.run_opts.replace(language=language)
            words_of = self._words(opts, language)
            finished = [0]

            def job(st, i, on_segment):
                try:
                    return pipeline.run_chunk(st, samples, chunks[i], opts, words_of, self._features,
                                              self.numpy_features, on_segment, trim=plan.trim_ctx)
                finally:
                    release_free_heap()  # else each chunk starts where the last one's temporaries peaked

            def on_live(i, raw):
                segment_callback(pipeline.segment(remap_segment(raw, chunks[i].time_map())))

            def on_done(i, outcome, n_live):
                if segment_callback is not None:
                    for seg in outcome[0][n_live:]:
                        segment_callback(seg)
                finished[0] += 1
                if progress_callback is not None:
                    total = len(chunks) if ahead is None else len(ahead.feed.order)
                    progress_callback(int(100 * finished[0] / total))

            results = self._engine.map(len(chunks) if ahead is None else ahead.feed, plan.workers, plan.full_ctx,
                                       group, job, on_live if segment_callback is not None else None, on_done)
        finally:
            if own and on_state is not None:
                on_state(None)
        workers = plan.workers
        if ahead is not None:  # the file is read: its final plan and pauses
            plan, gaps = ahead.final, ahead.result().gaps
        segments = [seg for segs, _ in results for seg in segs]
        native = pipeline.sum_timings([t for _, t in results])
        segments = self._finish_words(plan, samples, segments, gaps)
        return self._result(plan, segments, language, probs, native, detect_ms, (time.perf_counter() - t0) * 1000,
                            vad_ms=plan.vad_ms, chunks=len(plan.chunks), workers=workers)


class _ReadAhead:
    """A file read for :meth:`Model._run_path` on a thread of its own (filestream.read_path:
    decode, spool, VAD), handing out the long-form chunks the rest of the file can no longer
    change (vad.chunks.settled) while it reads, so the first chunks are transcribed while
    the VAD still runs over the rest.

    :meth:`wait_start` returns True once a chunk has settled (``plan``: the plan of the
    speech so far; ``chunks`` and ``feed`` grow as more settle), False when the read ended
    first (then :meth:`result` is the ReadFile, as read_path gives it). At the end of the
    read the final plan is made (``final``); chunks handed out are checked against it, and
    from the first that differs (a segmentation that changed later than the margin) the
    final plan's are run instead. :meth:`close` waits for the thread and frees the spool."""

    #: Audio read between two looks at the speech so far (seconds): each look segments all
    #: the VAD's probabilities so far (microseconds per minute of audio).
    LOOK_EVERY_S = 5.0

    def __init__(self, path, decide, group: StateGroup, multilingual: bool, preset: Optional[str]) -> None:
        self.group, self.multilingual, self.preset = group, multilingual, preset
        self.feed = engine.JobFeed()
        self.chunks: List = []
        self.plan = self.final = self.spool = None
        self._read = None
        self._error: Optional[BaseException] = None
        self._looked = 0
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(path, decide),
                                        name="whisperx_native-read", daemon=True)
        self._thread.start()

    def wait_start(self) -> bool:
        self._started.wait()
        return self.plan is not None

    def result(self):
        """The ReadFile (after the read); the read's error raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._read

    def close(self) -> None:
        self._thread.join()
        if self._read is not None and self.plan is not None:
            self._read.close()  # a read handed to the caller is closed by it

    def _work(self, path, decide) -> None:
        try:
            self._read = filestream.read_path(path, decide, cancelled=lambda: self.group.cancelled,
                                              on_vad=self._look)
            if self.plan is not None:
                self._finish()
        except BaseException as exc:  # handed to the caller's thread
            self._error = exc
            self.feed.fail(exc)
        finally:
            self._started.set()

    def _look(self, reader) -> None:
        """After a VAD block: hand out the chunks settled so far."""
        if reader.spool.size - self._looked < self.LOOK_EVERY_S * SAMPLE_RATE:
            return
        self._looked = reader.spool.size
        speech, n = reader.speech_so_far()
        plan = pipeline.make_plan(reader.plan.opts, n, multilingual=self.multilingual, preset=self.preset,
                                  speech=speech)
        k = settled(plan.chunks, n)
        if k <= len(self.chunks):
            return
        if self.plan is None:
            self.plan, self.spool = plan, reader.spool
        for c in plan.chunks[len(self.chunks):k]:
            self.chunks.append(c)
            self.feed.add()
        self._started.set()

    def _finish(self) -> None:
        read = self._read
        self.final = pipeline.make_plan(read.opts, read.samples.size, multilingual=self.multilingual,
                                        preset=self.preset, speech=read.speech, vad_ms=read.vad_ms)
        final = list(self.final.chunks)
        same = 0
        while same < len(self.chunks) and same < len(final) and self.chunks[same] == final[same]:
            same += 1
        if same < len(self.chunks):
            log.info("chunk %d changed after it settled: the final plan's chunks from there are run", same)
        order = list(range(same))
        for c in final[same:]:
            self.chunks.append(c)
            order.append(self.feed.add())
        self.feed.close(order)


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
