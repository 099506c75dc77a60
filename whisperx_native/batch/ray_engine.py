"""The Ray engine: actors that each load the model once, files sent to them as tasks.

One actor per worker slot (``states_per_actor=1``), or one per group of
``states_per_actor`` slots: an actor then runs that many files at once on the states of
its single copy of the weights (a threaded actor), as the local engine does. The driver
keeps every slot busy plus one queued task per actor, and no more: the rest of the
files wait in the driver (back-pressure), so a million inputs cost a million paths,
not a million pending tasks. A file that fails, or whose actor dies, is tried once
more (on whichever actor is free) and then recorded in failures.jsonl.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from pathlib import Path
from typing import Deque, Dict, List, Optional, Sequence

import ray

from .core import FileWorker, Job, Outcome, Tally, deferred_interrupt, write_texts
from .inputs import Item

__all__ = ["TranscribeActor", "run_ray", "ensure_ray"]

#: Attempts per file (the first and one retry).
MAX_ATTEMPTS = 2
#: How long the driver waits for the first actor to start (load its model) before giving up.
START_TIMEOUT_S = float(os.environ.get("WHISPERX_NATIVE_RAY_START_TIMEOUT", "600"))


@ray.remote(concurrency_groups={"control": 1})
class TranscribeActor:
    """A Ray actor with one loaded model and ``n_states`` states (its max_concurrency)."""

    def __init__(self, job: Job, n_states: int = 1) -> None:
        self.node = ray.get_runtime_context().get_node_id()
        self.worker: Optional[FileWorker] = None
        self.error = ""
        try:
            self.worker = FileWorker(job, n_states=n_states)
        except Exception as exc:  # reported by ready(): the driver names the reason and stops
            self.error = f"{type(exc).__name__}: {exc}"

    def process(self, path: str, outputs: Optional[Sequence[str]], source: Optional[str] = None) -> Outcome:
        if self.worker is None:
            outcome = Outcome(source or path, "failed", error_type="ModelError", message=self.error, fatal=True)
        else:
            outcome = self.worker.process(path, outputs, source)
        outcome.node = self.node
        return outcome

    @ray.method(concurrency_group="control")
    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()

    @ray.method(concurrency_group="control")
    def ready(self) -> str:
        """The node id once the model is loaded; raises the reason it could not be."""
        if self.worker is None:
            from .api import BatchError

            raise BatchError(self.error)
        return self.node


def ensure_ray(address: Optional[str] = None) -> bool:
    """Connect to Ray: the running session, ``address``, or a new local instance. True when
    this call started it (and its caller should shut it down)."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(**kwargs)
    return True


def run_ray(todo: List[Item], out: Path, *, formats, preset, options, model, workers, threads_per_worker,
            states_per_actor: int, address: Optional[str], write_on: str, tally: Tally,
            settings: Dict[str, object]) -> None:
    from .api import plan_layout

    if not todo:  # everything done already: no cluster to start or reach
        settings.update(write_on=write_on)
        return
    started = ensure_ray(address)
    actors: List = []
    try:
        cores = int(ray.cluster_resources().get("CPU", 1))
        w, t = plan_layout(cores, workers, threads_per_worker)
        s = max(1, min(states_per_actor, w))
        n_actors = max(1, math.ceil(w / s))
        settings.update(workers=w, threads_per_worker=t, states_per_actor=s, actors=n_actors, write_on=write_on,
                        ray_cpus=cores)
        n_actors = min(n_actors, math.ceil(len(todo) / s))
        job = Job(model, t, list(formats), preset, dict(options))
        # SPREAD: actors go to different nodes first; each reserves the cores its states use.
        cls = TranscribeActor.options(num_cpus=s * t, max_concurrency=s, max_restarts=1, max_task_retries=0,
                                      scheduling_strategy="SPREAD")
        actors = [cls.remote(job, s) for _ in range(n_actors)]
        _schedule(todo, out, formats, actors, s, write_on, tally, need_cpus=s * t)
    finally:
        for a in actors:
            try:
                ray.kill(a)
            except Exception:
                pass
        if started:
            ray.shutdown()


def _schedule(todo: List[Item], out: Path, formats, actors: List, slots: int, write_on: str, tally: Tally,
              need_cpus: float = 1) -> None:
    from .api import BatchError

    pending: Deque = deque((it, 1) for it in todo)
    inflight: Dict = {}             # ObjectRef -> (item, attempt, actor index)
    load = [0] * len(actors)        # tasks submitted to each actor and not yet back
    dead: set = set()
    # Files go only to actors that have started (model loaded): an actor the cluster has no
    # room for yet (more workers than CPUs, an autoscaler adding nodes) gets none meanwhile.
    starting: Dict = {a.ready.remote(): i for i, a in enumerate(actors)}
    ready: set = set()
    errors: List[str] = []
    per_actor = slots + 1           # its states busy, and one file queued so none waits on a round trip
    deadline = time.monotonic() + START_TIMEOUT_S

    def check_starting(timeout: float) -> None:
        if not starting:
            return
        done, _ = ray.wait(list(starting), num_returns=len(starting), timeout=timeout)
        for ref in done:
            i = starting.pop(ref)
            try:
                ray.get(ref)
                ready.add(i)
            except ray.exceptions.RayTaskError as exc:  # the model failed to load there
                dead.add(i)
                errors.append(_first_lines(exc.cause or exc))
            except ray.exceptions.RayError as exc:      # the actor itself died
                dead.add(i)
                errors.append(_first_lines(exc))

    def submit() -> None:
        while pending:
            free = [i for i in ready if i not in dead and load[i] < per_actor]
            if not free:
                return
            i = min(free, key=lambda j: load[j])
            it, attempt = pending.popleft()
            # Absolute paths: an actor's working directory is not the driver's.
            outputs = None if write_on == "driver" else [os.path.abspath(p) for p in it.outputs(out, formats)]
            ref = actors[i].process.remote(os.path.abspath(it.path), outputs, it.path)
            inflight[ref] = (it, attempt, i)
            load[i] += 1

    def finish(ref) -> None:
        it, attempt, i = inflight.pop(ref)
        load[i] -= 1
        try:
            outcome: Outcome = ray.get(ref)
        except ray.exceptions.RayActorError as exc:      # the actor died (it restarts once)
            outcome = Outcome(it.path, "failed", error_type=type(exc).__name__, message=_first_lines(exc, 1))
            if not _alive(actors[i]):
                dead.add(i)
        except ray.exceptions.RayError as exc:
            cause = getattr(exc, "cause", None) or exc
            outcome = Outcome(it.path, "failed", error_type=type(cause).__name__, message=_first_lines(cause, 1))
        outcome.attempts = attempt
        if outcome.status == "failed" and not outcome.fatal and attempt < MAX_ATTEMPTS:
            pending.appendleft((it, attempt + 1))
            return
        with deferred_interrupt():  # written and counted, or neither
            if outcome.status == "done" and outcome.texts is not None:
                write_texts(it.outputs(out, formats), [outcome.texts[f] for f in formats])
                outcome.texts = None
            tally.add(outcome)
        if outcome.fatal:
            raise BatchError(f"{outcome.path}: {outcome.message}")

    try:
        while pending or inflight:
            check_starting(0)
            submit()
            if not inflight:
                if len(dead) == len(actors):
                    why = f": {errors[0]}" if errors else "; see the Ray logs"
                    raise BatchError(f"no Ray worker is left to transcribe with{why}")
                if time.monotonic() > deadline:
                    raise BatchError(f"no Ray worker started within {START_TIMEOUT_S:.0f} s: each needs "
                                     f"{need_cpus:g} CPUs on one node; the cluster has "
                                     f"{ray.cluster_resources().get('CPU', 0):g} in all")
                check_starting(0.5)
                continue
            done, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
            for ref in done:
                finish(ref)
    except BaseException:
        # Ctrl-C or a fatal error: the actors cancel their running calls (nothing is written
        # for those); files already transcribed are still written, each atomically.
        for a in actors:
            try:
                a.stop.remote()
            except Exception:
                pass
        deadline = time.monotonic() + 30.0
        while inflight and time.monotonic() < deadline:
            ready, _ = ray.wait(list(inflight), num_returns=len(inflight), timeout=0.5)
            for ref in ready:
                it, attempt, i = inflight.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception:
                    continue
                if outcome.status == "done":
                    with deferred_interrupt():
                        if outcome.texts is not None:
                            write_texts(it.outputs(out, formats), [outcome.texts[f] for f in formats])
                        tally.add(outcome)
        raise


def _first_lines(exc: BaseException, n: int = 3) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:n]) or type(exc).__name__


def _alive(actor) -> bool:
    try:
        ray.get(actor.ready.remote(), timeout=60)
        return True
    except Exception:
        return False
