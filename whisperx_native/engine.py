"""The native engine: one loaded model and the states that run on it. Ownership, no policy.

``Engine`` holds the native ``Context`` (the weights) and a :class:`StatePool` of native
``State`` objects (the per-run buffers: KV caches, compute buffers). It runs the work the
pipeline (pipeline.py) planned: one job on one state, or a list of jobs on several states
in parallel, with their segments handed to the caller in order as they are decoded; and it
runs the Silero VAD the long-form plan is made from (:func:`speech_segments`).
Which options a run gets, what a job does with its state and how raw records become
results are the pipeline's business; what a state may safely be reused for is this
module's.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from . import _native
from .errors import Cancelled, ClosedError
from .vad.silero import load_vad

__all__ = ["Engine", "JobFeed", "StateGroup", "StatePool", "speech_segments"]


def speech_segments(samples, vad_model=None, params=None) -> List[tuple]:
    """Speech segments (seconds) of ``samples`` by Silero VAD with segmentation ``params``
    (the pipeline's: pipeline.vad_parameters); the VAD model is loaded for the call (load_vad
    validates the file first: whisper.cpp trusts its input) and freed after it."""
    vad, _info = load_vad(vad_model, n_threads=1)
    try:
        return vad.segments(samples, **(params or {}))
    finally:
        vad.close()


class StatePool:
    """Native states of one context, reused across calls (thread-safe).

    ``acquire`` hands out an idle state or allocates one; ``release`` takes it back and
    frees states beyond ``max_idle`` idle ones. Each state handed out is claimed for its new
    owner (``State.claim``: a new generation, the cancel flag cleared), so a late cancel
    aimed at the previous call cannot stop the next one.

    The hazard it knows: with flash attention whisper.cpp pads the encoder's and the
    cross-attention's K/V to 1536 positions and reads the 36 padding rows unmasked. A fresh
    state has zeros there (what whisper-cli always sees); a run with a trimmed ``audio_ctx``
    leaves its own K/V in them, and every later full-context run on that state reads it
    (measured: tiny.en, 191 s file, WER 8.7 % -> 20.1 % after one 3 s utterance). Trimmed
    runs are multiples of 256 positions: no padding, safe on any state. So a state that ran
    a trimmed context (``release(trimmed=True)``) serves trimmed runs only. (Since
    vendor/patches/0015 every encode zeroes that padding, so the rule is a second guard; a
    chunked fast run mixes trimmed and full chunks on one state on the patch's strength.)"""

    def __init__(self, ctx: "_native.Context", max_idle: int = 1) -> None:
        self._ctx = ctx
        self.max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: List[_native.State] = []
        self._running: set = set()
        self._trimmed: set = set()  # states that ran a trimmed audio_ctx
        self._watched: set = set()  # groups of calls not on a state yet (a file being read: watch)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def idle(self) -> List["_native.State"]:
        """The idle states (a snapshot)."""
        with self._lock:
            return list(self._idle)

    @property
    def running(self) -> List["_native.State"]:
        """The states calls hold now (a snapshot)."""
        with self._lock:
            return list(self._running)

    def states(self) -> List["_native.State"]:
        """Every live state, idle and running (one snapshot)."""
        with self._lock:
            return list(self._idle) + list(self._running)

    def acquire(self, full_ctx: bool = False) -> "_native.State":
        """A state from the idle pool, or a new one. ``full_ctx``: the run uses the whole
        1500-position encoder context, and needs a state that never ran a trimmed one."""
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

    def release(self, st: "_native.State", trimmed: bool = False) -> None:
        """Back to the idle pool; over ``max_idle``, trimmed states go first (a clean one
        serves both kinds of run). After ``close()`` the state is freed."""
        with self._lock:
            self._running.discard(st)
            if trimmed:
                self._trimmed.add(st)
            self._idle.append(st)
            evict = list(self._idle) if self._closed else []
            while len(self._idle) - len(evict) > self.max_idle:
                evict.append(next((s for s in self._idle if s in self._trimmed and s not in evict),
                                  next(s for s in self._idle if s not in evict)))
            for s in evict:
                self._idle.remove(s)
                self._trimmed.discard(s)
        for s in evict:
            s.close()

    def cancel_running(self) -> None:
        """Cancel every run on a state handed out now, each with its owner's generation: a
        state that went back to the pool and on to another call is left alone; and every
        call :meth:`watch` covers."""
        with self._lock:
            running = [(st, st.generation) for st in self._running]
            watched = list(self._watched)
        for st, generation in running:
            st.cancel(generation)
        for group in watched:
            group.cancel()

    @contextmanager
    def watch(self, group: "StateGroup") -> Iterator["StateGroup"]:
        """For the ``with`` block, :meth:`cancel_running` cancels ``group`` too: a call that
        holds no state yet (its file being decoded) is stopped by ``Model.cancel()``."""
        with self._lock:
            self._watched.add(group)
        try:
            yield group
        finally:
            with self._lock:
                self._watched.discard(group)

    def close(self) -> None:
        """Free the idle states; running ones are freed as they come back."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
            self._trimmed.clear()
        for st in idle:
            st.close()


class StateGroup:
    """The native states one call is using, cancelled together (what a ``CancelToken``
    binds to: ``cancel(generation)`` and ``generation`` as a State has)."""

    generation = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: Dict[object, int] = {}
        self.cancelled = False
        self.on_cancel: List[Callable[[], None]] = []  # e.g. waking threads that wait for work

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
            wake = list(self.on_cancel)
        for f in wake:
            f()


class JobFeed:
    """The jobs of one :meth:`Engine.map`, made known while it runs: another thread
    :meth:`add` s them one by one (a long file's chunks while the file is still being read)
    and :meth:`close` s the feed naming the jobs whose outcomes make the result, in order
    (one added but superseded is left out and not run if not yet started), or
    :meth:`fail` s it with the error the map raises."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.n = 0
        self.order: Optional[List[int]] = None
        self.wanted: frozenset = frozenset()
        self.error: Optional[BaseException] = None

    @classmethod
    def of(cls, n: int) -> "JobFeed":
        feed = cls()
        feed.n = n
        feed.close()
        return feed

    def add(self) -> int:
        with self.cond:
            i = self.n
            self.n += 1
            self.cond.notify_all()
            return i

    def close(self, order: Optional[List[int]] = None) -> None:
        with self.cond:
            self.order = list(range(self.n)) if order is None else list(order)
            self.wanted = frozenset(self.order)
            self.cond.notify_all()

    def fail(self, exc: BaseException) -> None:
        with self.cond:
            if self.error is None:
                self.error = exc
            self.cond.notify_all()

    def wake(self) -> None:
        """Let the threads waiting on the feed look again (a cancel)."""
        with self.cond:
            self.cond.notify_all()


OnState = Optional[Callable[[object], None]]


class Engine:
    """A model file loaded into native memory (``Context``) and its :class:`StatePool`."""

    def __init__(self, path: str, *, use_gpu: bool = True, flash_attn: bool = True, alignment_heads=None,
                 max_idle_states: int = 1, info=None, kv_type: Tuple[str, str] = ("f16", "f16")) -> None:
        """``info``: the ``ModelInfo`` of ``ggml_file.validate(path)``, so the file is not parsed again."""
        self.ctx = _native.Context(path, use_gpu=use_gpu, flash_attn=flash_attn, alignment_heads=alignment_heads,
                                   info=info, k_type=kv_type[0], v_type=kv_type[1])
        self.pool = StatePool(self.ctx, max_idle_states)

    @property
    def load_ms(self) -> float:
        return self.ctx.load_ms

    def close(self) -> None:
        """Free the idle states and the context (the context's memory once the last
        running state is freed)."""
        self.pool.close()
        self.ctx.close()

    def memory(self) -> Dict[str, object]:
        """Native bytes: ``weights`` (all backend buffers), one dict per live state, the total."""
        weights = sum(v for k, v in self.ctx.sizes.items() if k.endswith("total_size"))
        per_state = [st.memory() for st in self.pool.states() if not st.closed]
        total = weights + sum(sum(d.values()) for d in per_state)
        return {"weights": weights, "states": per_state, "total": total}

    @contextmanager
    def state(self, full_ctx: bool = True, on_state: OnState = None,
              group: Optional[StateGroup] = None) -> Iterator["_native.State"]:
        """A state of the pool for the ``with`` block. ``on_state(state)``/``on_state(None)``
        tell a caller (a CancelToken's ``bind``) while it may cancel it; ``group`` adds it to a
        call's group instead. A run without ``full_ctx`` marks the state trimmed."""
        st = self.pool.acquire(full_ctx)
        try:
            if group is not None:
                group.add(st)
            if on_state is not None:
                on_state(st)  # from here until the state goes back to the pool, the caller may cancel it
            yield st
        finally:
            if on_state is not None:
                on_state(None)
            if group is not None:
                group.discard(st)
            self.pool.release(st, trimmed=not full_ctx)

    def map(self, jobs: "int | JobFeed", workers: int, full_ctx: bool, group: StateGroup,
            job: Callable[..., object], on_live: Optional[Callable[[int, object], None]] = None,
            on_done: Optional[Callable[[int, object, int], None]] = None) -> List[object]:
        """Jobs on ``workers`` states at once, one thread and one state per worker for all its
        jobs: ``job(state, i, on_segment)`` returns job ``i``'s outcome; ``on_segment(raw)``
        (None without ``on_live``) is the native segment callback. ``jobs``: a count
        (jobs ``0..jobs-1``) or a :class:`JobFeed` still being filled by another thread.

        The calling thread waits until the jobs are all known (the feed closed), then, in
        the order the feed names, hands out ``on_live(i, raw)`` for the segments of the
        earliest unfinished job as whisper.cpp decodes them and ``on_done(i, outcome,
        n_live)``; it raises the first error, the feed's included (the other jobs are
        cancelled through ``group``). Returns the outcomes in that order."""
        feed = jobs if isinstance(jobs, JobFeed) else JobFeed.of(jobs)
        cond = feed.cond
        done: Dict[int, object] = {}
        live: Dict[int, list] = {}  # raw segments while decoding
        next_index = [0]

        def take() -> Optional[int]:
            """The next job to run (None: stop); with ``cond`` held."""
            while True:
                if feed.error is not None or group.cancelled or any(isinstance(v, BaseException)
                                                                     for v in done.values()):
                    return None
                i = next_index[0]
                if i < feed.n:
                    next_index[0] += 1
                    if feed.order is not None and i not in feed.wanted:
                        continue  # superseded while the feed was filled: not run
                    live[i] = []
                    return i
                if feed.order is not None:
                    return None
                cond.wait()

        def work() -> None:
            st = None
            try:
                while True:
                    with cond:
                        i = take()
                        if i is None:
                            return

                    def on_segment(raw, i=i):
                        with cond:
                            live[i].append(raw)
                            cond.notify_all()

                    try:
                        if st is None:  # one state per worker for all its jobs
                            st = self.pool.acquire(full_ctx)
                            group.add(st)
                        outcome = job(st, i, on_segment if on_live is not None else None)
                    except BaseException as exc:  # handed to the caller's thread
                        outcome = exc
                    with cond:
                        done[i] = outcome
                        cond.notify_all()
            finally:
                if st is not None:
                    group.discard(st)
                    self.pool.release(st, trimmed=not full_ctx)

        threads = [threading.Thread(target=work, name=f"whisperx_native-chunk-{k}", daemon=True)
                   for k in range(workers)]
        group.on_cancel.append(feed.wake)
        for th in threads:
            th.start()
        results = []
        try:
            with cond:
                while feed.order is None and feed.error is None:
                    cond.wait()
                if feed.error is not None:
                    raise feed.error
                order = list(feed.order)
            for i in order:
                emitted = 0
                while True:
                    with cond:
                        # a job no worker took after a cancel never finishes: it is cancelled
                        untaken = lambda: i >= next_index[0] and group.cancelled  # noqa: E731
                        while i not in done and len(live.get(i, ())) == emitted and feed.error is None \
                                and not untaken():
                            cond.wait()
                        if feed.error is not None:
                            raise feed.error
                        outcome = done.get(i)
                        if outcome is None and untaken():
                            outcome = Cancelled("transcription cancelled")
                        fresh = live.get(i, [])[emitted:] if outcome is None else []
                    if on_live is not None:
                        for raw in fresh:
                            on_live(i, raw)
                    emitted += len(fresh)
                    if outcome is not None:
                        break
                if isinstance(outcome, BaseException):
                    raise outcome
                results.append(outcome)
                if on_done is not None:
                    on_done(i, outcome, emitted)
        except BaseException as exc:
            group.cancel()
            feed.fail(exc)  # wakes workers waiting for a job
            raise
        finally:
            for th in threads:
                th.join()
            group.on_cancel.remove(feed.wake)
        return results
