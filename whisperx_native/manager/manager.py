"""WhisperManager: the pure-Python layer a desktop app or a server talks to.

It decides *when* native memory exists: nothing is allocated before the first call
(or ``preload()``), the model is freed after ``idle_timeout`` seconds without a call,
switching loads the new model while running calls finish on the old one, and under
CPU pressure from other programs it steps down a chain of smaller models.

Locking: one condition variable guards which model is served and how many calls use
it. Native work (loading, transcribing, freeing) always happens outside it.
"""

from __future__ import annotations

import functools
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, List, Optional, Sequence

from ..cancel import CancelToken
from ..errors import ClosedError, ModelError
from ..model import Model
from ..threads import cpu_count
from ..result import Result
from .budget import DEFAULT_BUDGET, fitting, states_within
from .cpu import CpuMonitor, Sampler
from .events import Emitter, Event
from .memory import process_rss, release_free_heap
from .metrics import Metrics

__all__ = ["WhisperManager", "DOWNGRADE_CHAINS"]

#: Step-down order under CPU pressure (a model not listed has no smaller step unless a
#: chain is given).
DOWNGRADE_CHAINS: List[List[str]] = [
    ["medium.en", "small.en", "base.en", "tiny.en"],
    ["large-v3", "large-v3-turbo", "medium", "small", "base", "tiny"],
]


class _Served:
    """One loaded model and the number of calls currently using it."""

    __slots__ = ("name", "model", "active", "load_ms", "call_states")

    def __init__(self, name: str, model: Model, load_ms: float, call_states: int = 0) -> None:
        self.name, self.model, self.active, self.load_ms = name, model, 0, load_ms
        # states one call may run at once (long-form chunk workers) within the budget; 0: no cap
        self.call_states = call_states


class WhisperManager:
    """Thread-safe, lazily loading, self-unloading front end to one Whisper model.

    ``transcribe(audio, **options)`` takes what ``Model.transcribe`` takes and returns
    the same ``Result``. Events (``loaded``, ``unloaded``, ``switched``, ``downgraded``,
    ``upgraded``, ``over_budget`` ...) go to ``on_event`` and to the
    ``whisperx_native.manager`` logger.
    """

    def __init__(self, model: str = "small.en", *, idle_timeout: Optional[float] = 30.0, preload: bool = False,
                 n_threads: Optional[int] = None, memory_budget: Optional[int] = DEFAULT_BUDGET,
                 allow_smaller: bool = True, cpu_threshold: float = 0.80, cpu_window: float = 10.0,
                 cpu_interval: float = 0.5, auto_downgrade: bool = True,
                 downgrade_chain: Optional[Sequence[str]] = None, upgrade_after: Optional[float] = None,
                 max_concurrent: int = 2, on_event: Optional[Callable[[Event], None]] = None,
                 cpu_sampler: Optional[Sampler] = None, history: int = 1000) -> None:
        from ..errors import OptionTypeError
        from ..validation import check_bool, check_callable, check_float, check_int, check_path, clamp_threads

        model = check_path(model, "model")  # a name or a path, without NUL
        if idle_timeout is not None:
            idle_timeout = check_float(idle_timeout, "idle_timeout", 0.0, float("inf")) \
                if idle_timeout != float("inf") else None  # inf: never unload
            if idle_timeout is not None:
                idle_timeout = min(idle_timeout, threading.TIMEOUT_MAX)
        n_threads = None if n_threads is None else clamp_threads(n_threads, allow_zero=True) or None
        if memory_budget is not None:
            memory_budget = check_int(memory_budget, "memory_budget", 1, None)
        allow_smaller = check_bool(allow_smaller, "allow_smaller")
        cpu_threshold = check_float(cpu_threshold, "cpu_threshold", 1e-6, 1.0)  # a share of the cores, > 0
        cpu_window = check_float(cpu_window, "cpu_window", 0.001, 1e7)
        cpu_interval = check_float(cpu_interval, "cpu_interval", 0.001, 1e5)
        auto_downgrade = check_bool(auto_downgrade, "auto_downgrade")
        if upgrade_after is not None:
            upgrade_after = check_float(upgrade_after, "upgrade_after", 0.0, 1e9)
        max_concurrent = check_int(max_concurrent, "max_concurrent", 1, 64)
        history = check_int(history, "history", 1, 10_000_000)
        check_callable(on_event, "on_event")
        check_callable(cpu_sampler, "cpu_sampler")
        if downgrade_chain is not None:
            if isinstance(downgrade_chain, (str, bytes)) or not isinstance(downgrade_chain, Sequence):
                raise OptionTypeError("downgrade_chain must be a sequence of model names")
            downgrade_chain = [check_path(m, "downgrade_chain item") for m in downgrade_chain]
        self.requested = str(model)
        self.idle_timeout = idle_timeout
        self.n_threads = n_threads
        self.memory_budget = memory_budget
        self.allow_smaller = allow_smaller
        self.max_concurrent = max_concurrent
        self.metrics = Metrics(history)
        self._emit = Emitter(on_event)
        self._target = self.requested
        self._chain = list(downgrade_chain) if downgrade_chain else _chain_for(self.requested)
        self._cond = threading.Condition()
        self._served: Optional[_Served] = None
        self._loading: Optional[Future] = None
        self._retired: List[_Served] = []
        self._idle_timer: Optional[threading.Timer] = None
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._executor: Optional[ThreadPoolExecutor] = None
        self._closed = False
        self._switching = False
        self._monitor: Optional[CpuMonitor] = None
        if auto_downgrade:
            self._monitor = CpuMonitor(self._on_pressure, sampler=cpu_sampler, threshold=cpu_threshold,
                                       window=cpu_window, interval=cpu_interval,
                                       on_calm=self._on_calm if upgrade_after else None,
                                       calm_after=upgrade_after).start()
        if preload:
            self.preload()

    # ------------------------------------------------------------------ state
    @property
    def model_name(self) -> str:
        """The model new calls go to (loaded or not)."""
        return self._target

    @property
    def loaded(self) -> bool:
        return self._served is not None

    def status(self) -> dict:
        # Under the lock only a snapshot: psutil and the model's state-pool lock are taken outside
        # it, so a slow status() never holds up calls, loads or the idle timer.
        with self._cond:
            served = self._served
            out = {
                "model": self._target,
                "loaded": served is not None,
                "active_calls": served.active if served else 0,
                "loading": self._loading is not None,
                "retired_draining": len(self._retired),
            }
        native = 0
        if served is not None:
            try:
                native = served.model.memory()["total"]
            except ClosedError:  # unloaded meanwhile
                native = 0
        out["native_bytes"] = native
        out["rss_bytes"] = process_rss()
        out["cpu_external_load"] = self._monitor.average if self._monitor else None
        return out

    # ------------------------------------------------------------------ loading
    def preload(self) -> Future:
        """Start loading in a background thread; returns at once (a Future of the name).
        A transcription arriving meanwhile waits for this load; it does not start another."""
        with self._cond:
            self._check_open()
            if self._served is not None:
                fut: Future = Future()
                fut.set_result(self._served.name)
                return fut
            if self._loading is not None:
                return self._loading
            fut = self._loading = Future()
            name = self._target
        threading.Thread(target=self._load_into_service, args=(name, fut), name="whisperx-preload",
                         daemon=True).start()
        return fut

    def _load_into_service(self, name: str, fut: Future) -> None:
        try:
            served = self._load(name)
        except BaseException as exc:
            with self._cond:
                self._loading = None
                self._cond.notify_all()
            self._emit("load_failed", name, error=str(exc))
            fut.set_exception(exc)
            return
        with self._cond:
            self._served = served
            self._loading = None
            self._target = served.name
            self._schedule_idle_unload()
            self._cond.notify_all()
        fut.set_result(served.name)

    def _load(self, name: str) -> _Served:
        """Load ``name``, or the best model that fits the budget instead; no lock held."""
        options = fitting(name, self.memory_budget, self.max_concurrent, self._chain if self.allow_smaller else [])
        errors = []
        for chosen, need, kv_type in options:
            t0 = time.perf_counter()
            try:
                # exactly the file and caches the budget was planned for (no automatic -bf16q8 here)
                model = Model(chosen, n_threads=self.n_threads, max_idle_states=self.max_concurrent,
                              best_variant=False, kv_type=kv_type)
            except ModelError as exc:  # e.g. a smaller variant that cannot be installed here
                if len(options) == 1:
                    raise
                # One full reason; the smaller variants mostly fail the same way (a 3 KB event otherwise).
                why = str(exc) if not errors else str(exc).splitlines()[-1].strip()
                errors.append(f"{chosen}: {'as above' if errors and why in errors[0] else why}")
                continue
            load_ms = (time.perf_counter() - t0) * 1000
            if chosen != name or kv_type != "auto":
                self._emit("over_budget", name, budget=self.memory_budget, chosen=chosen, estimated_need=need,
                           kv_type="/".join(model.kv_type))
            self._emit("loaded", chosen, load_ms=round(load_ms, 1), native_bytes=model.memory()["total"],
                       rss_bytes=process_rss())
            # The budget holds max_concurrent states; a long file would run up to one per
            # thread at once: each call gets its share of the states that fit.
            call_states = 0
            if self.memory_budget is not None:
                call_states = max(1, states_within(chosen, self.memory_budget, kv_type=kv_type) // self.max_concurrent)
            return _Served(chosen, model, load_ms, call_states)
        raise ModelError(f"could not load {name!r} nor a model within the budget: " + "; ".join(errors))

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the manager is closed")

    # ------------------------------------------------------------------ calls
    def _acquire(self):
        """The served model with one more active call; loads it if needed (once)."""
        waited_ms = 0.0
        while True:
            with self._cond:
                self._check_open()
                self._cancel_idle_unload()
                if self._served is not None:
                    self._served.active += 1
                    return self._served, waited_ms
                fut = self._loading
                if fut is None:
                    fut = self._loading = Future()
                    name = self._target
                    mine = True
                else:
                    mine = False
            t0 = time.perf_counter()
            if mine:
                self._load_into_service(name, fut)
            fut.result()  # raises the load error for every waiting caller
            waited_ms += (time.perf_counter() - t0) * 1000

    def _release(self, served: _Served) -> None:
        to_close = None
        with self._cond:
            served.active -= 1
            if served is not self._served:
                if served.active == 0 and served in self._retired:
                    self._retired.remove(served)
                    to_close = served
            elif served.active == 0:
                self._schedule_idle_unload()
        if to_close is not None:
            self._free(to_close, "switched_out")

    def transcribe(self, audio, *, cancel_token: Optional[CancelToken] = None, **options) -> Result:
        """Transcribe on the served model (loading it first if needed). Thread-safe;
        up to ``max_concurrent`` calls run in parallel, more wait for a slot."""
        t0 = time.perf_counter()
        c0 = time.process_time()
        with self._slots:
            served, waited_ms = self._acquire()
            try:
                if served.call_states and not options.get("chunk_workers"):
                    options["chunk_workers"] = served.call_states
                result = served.model.transcribe(audio, cancel_token=cancel_token, **options)
                native = served.model.memory()["total"]
            finally:
                self._release(served)
        wall = time.perf_counter() - t0
        t = result.timings
        tokens = sum(len(s.tokens) for s in result.segments)
        self.metrics.record({
            "model": served.name, "audio_seconds": t.get("audio_seconds", 0.0), "wall_s": wall,
            "real_time_factor": wall / t["audio_seconds"] if t.get("audio_seconds") else 0.0,
            "load_ms": waited_ms, "mel_ms": t.get("mel_ms", 0.0), "encode_ms": t.get("encode_ms", 0.0),
            "decode_ms": t.get("decode_ms", 0.0), "tokens": tokens,
            "threads": served.model.n_threads,
            "cpu_percent": 100.0 * (time.process_time() - c0) / wall / cpu_count() if wall > 0 else 0.0,
            "peak_native_bytes": native, "time": time.time(),
        })
        return result

    async def atranscribe(self, audio, **options) -> Result:
        """``transcribe`` for event loops: runs on a worker thread, never blocks the loop.
        Cancelling the awaiting task cancels the native run; the state goes back to the pool."""
        # Here, not at the top: an event loop has asyncio loaded; a synchronous caller need not
        # (asyncio brings ssl: 5.5 MB of a tiny.en process's peak).
        import asyncio

        loop = asyncio.get_running_loop()
        token = CancelToken()
        fut = loop.run_in_executor(self._get_executor(),
                                   functools.partial(self.transcribe, audio, cancel_token=token, **options))
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            token.cancel()
            try:  # let the worker finish unwinding, so the state is back before we return
                await asyncio.wait_for(asyncio.shield(fut), timeout=60)
            except asyncio.CancelledError:
                raise  # cancelled again while waiting: stop waiting
            except Exception:
                pass  # the worker's own outcome (Cancelled, or a timeout): this task was cancelled
            raise

    def _get_executor(self) -> ThreadPoolExecutor:
        with self._cond:
            self._check_open()
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.max_concurrent,
                                                    thread_name_prefix="whisperx-call")
            return self._executor

    # ------------------------------------------------------------------ idle unload
    def _schedule_idle_unload(self) -> None:
        # caller holds self._cond
        self._cancel_idle_unload()
        if self.idle_timeout is None or self._closed:
            return
        timer = threading.Timer(self.idle_timeout, self._idle_expired)
        timer.daemon = True
        self._idle_timer = timer
        timer.start()

    def _cancel_idle_unload(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _idle_expired(self) -> None:
        with self._cond:
            if self._idle_timer is None or threading.current_thread() is not self._idle_timer:
                return  # rescheduled or cancelled meanwhile
            self._idle_timer = None
            served = self._served
            if served is None or served.active > 0:
                return
            self._served = None
        self._free(served, "idle")

    def unload(self) -> bool:
        """Free the served model now if no call uses it; returns whether it did."""
        with self._cond:
            served = self._served
            if served is None or served.active > 0:
                return False
            self._cancel_idle_unload()
            self._served = None
        self._free(served, "requested")
        return True

    def _free(self, served: _Served, reason: str) -> None:
        served.model.close()
        release_free_heap()
        self._emit("unloaded", served.name, reason=reason, rss_bytes=process_rss())

    # ------------------------------------------------------------------ switching
    def switch_model(self, name: str, *, background: bool = False) -> Future:
        """Serve ``name`` from now on. Calls already running finish on the old model, which
        is freed when its last call ends. A model that fails to load leaves the old one in
        service and raises (or, in the background, sets the Future's exception)."""
        self._check_open()
        fut: Future = Future()

        def work():
            try:
                new = self._load(str(name))
            except BaseException as exc:
                self._emit("switch_failed", str(name), error=str(exc), kept=self._target)
                fut.set_exception(exc)
                return
            old_name = self._target
            to_close = None
            with self._cond:
                if self._closed:
                    to_close, new = new, None
                else:
                    old = self._served
                    self._served, self._target = new, new.name
                    if old is not None:
                        if old.active == 0:
                            to_close = old
                        else:
                            self._retired.append(old)
                    self._schedule_idle_unload()
                    self._cond.notify_all()
            if to_close is not None:
                self._free(to_close, "switched_out")
            if new is None:
                fut.set_exception(ClosedError("the manager closed during the switch"))
                return
            self._emit("switched", new.name, previous=old_name, load_ms=round(new.load_ms, 1))
            fut.set_result(new.name)

        if background:
            threading.Thread(target=work, name="whisperx-switch", daemon=True).start()
        else:
            work()
            fut.result()
        return fut

    # ------------------------------------------------------------------ CPU pressure
    def _step(self, direction: int) -> Optional[str]:
        """The next model down (+1) or up (-1) the chain; never above the requested one."""
        chain, current = self._chain, self._target
        if current not in chain:
            return None
        i = chain.index(current) + direction
        if direction < 0 and self.requested in chain and i < chain.index(self.requested):
            return None
        return chain[i] if 0 <= i < len(chain) else None

    def downgrade(self, reason: str = "requested") -> Optional[str]:
        """Step one model down the chain now (in the background, as CPU pressure does).
        Returns the new model's name, or None at the end of the chain or mid-switch."""
        return self._change(+1, "downgraded", reason=reason)

    def _on_pressure(self, load: float) -> None:
        self._change(+1, "downgraded", reason="cpu", external_cpu_load=round(load, 3))

    def _on_calm(self, load: float) -> None:
        self._change(-1, "upgraded", reason="cpu calm", external_cpu_load=round(load, 3))

    def _change(self, direction: int, kind: str, **detail) -> Optional[str]:
        with self._cond:
            name = self._step(direction)
            if name is None or self._closed or self._switching:
                return None  # one step at a time: the monitor asks again after a full window
            previous = self._target
            loaded = self._served is not None or self._loading is not None
            if not loaded:
                self._target = name  # nothing to swap: the next load takes the new model
            self._switching = loaded
        self._emit(kind, name, previous=previous, **detail)
        if loaded:
            self.switch_model(name, background=True).add_done_callback(self._switch_done)
        return name

    def _switch_done(self, _fut: Future) -> None:
        with self._cond:
            self._switching = False

    # ------------------------------------------------------------------ shutdown
    def close(self) -> None:
        """Stop the monitor and timers and free every model (running calls finish first)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cancel_idle_unload()
            served, self._served = self._served, None
            retired, self._retired = self._retired, []
            executor, self._executor = self._executor, None
        if self._monitor is not None:
            self._monitor.stop()
        if executor is not None:
            executor.shutdown(wait=True)
        for s in ([served] if served else []) + retired:
            self._free(s, "closed")

    def __enter__(self) -> "WhisperManager":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<WhisperManager {self._target!r} loaded={self.loaded}>"


def _chain_for(name: str) -> List[str]:
    for chain in DOWNGRADE_CHAINS:
        if name in chain:
            return chain
    return [name]

