"""``transcribe_many``: many files, one call, resumable; the local engine."""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ..errors import OptionError, WhisperError
from ..output.formats import FORMATS
from .core import FileWorker, Job, Outcome, Tally
from .inputs import Item, expand_inputs, outputs_complete

__all__ = ["BatchError", "transcribe_many", "plan_layout"]

ENGINES = ("local", "ray")


class BatchError(WhisperError):
    """A problem with the batch itself (a bad option every file would fail on, no usable
    worker): the batch stops. Problems of single files are recorded in failures.jsonl."""


def plan_layout(cores: int, workers: Optional[int], threads_per_worker: Optional[int],
                n_files: Optional[int] = None) -> Tuple[int, int]:
    """(workers, threads per worker) with workers × threads ≤ cores where either is left open.

    Neither given: one single-threaded worker per core (concurrent states beat threads:
    whisper.cpp's threads meet at a barrier after every graph node, states never wait
    for each other) — but no more workers than ``n_files``: the cores left over become
    threads (one long file on 4 cores: 1 × 4, not 4 × 1 with three idle)."""
    cores = max(1, int(cores))
    if workers is not None and workers < 1 or threads_per_worker is not None and threads_per_worker < 1:
        raise OptionError("workers and threads_per_worker must be 1 or more")
    if workers is None and threads_per_worker is None:
        w = min(cores, n_files) if n_files else cores
        return w, cores // w
    if workers is None:
        return max(1, cores // threads_per_worker), threads_per_worker
    if threads_per_worker is None:
        return workers, max(1, cores // workers)
    return workers, threads_per_worker


def _formats(formats: Union[str, Sequence[str]]) -> List[str]:
    if isinstance(formats, str):
        formats = [f for f in formats.split(",")]
    names = [f.strip().lower() for f in formats if f.strip()]
    if names == ["all"]:
        return list(FORMATS)
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise OptionError(f"unknown output format {','.join(bad) or formats!r}; choose from {','.join(FORMATS)} or all")
    return list(dict.fromkeys(names))


def _check_options(preset: Optional[str], options: Dict[str, object]) -> None:
    """Raise OptionError/OptionTypeError for options no file could be transcribed with."""
    from .. import _native
    from ..options import resolve_options

    opts = resolve_options(preset, dict(options), 1)
    if opts.language is not None and _native.lang_id(str(opts.language).lower()) < 0:
        raise OptionError(f"unknown language {opts.language!r}; use a code like 'en', 'de', or 'auto'")


def transcribe_many(inputs: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]],
                    out_dir: Union[str, os.PathLike], *, engine: str = "local", workers: Optional[int] = None,
                    threads_per_worker: Optional[int] = None, model: Optional[str] = None,
                    formats: Union[str, Sequence[str]] = ("txt",), preset: Optional[str] = None,
                    address: Optional[str] = None, states_per_actor: int = 1, write_on: str = "driver",
                    overwrite: bool = False, progress: bool = False, **options) -> Dict[str, object]:
    """Transcribe every file ``inputs`` names into ``out_dir``; return the summary.

    ``inputs``: files, directories (recursive, audio/video extensions), glob patterns, or
    ``@list.txt``; outputs mirror the inputs' sub-folders (see ``batch.inputs``), one per
    file and format, each written atomically. A file whose outputs all exist and parse is
    skipped (``overwrite=True`` redoes it); a file that fails is recorded in
    ``out_dir/failures.jsonl`` and the others go on. ``out_dir/summary.json`` gets the
    returned summary: files done / skipped / failed, audio and wall seconds, throughput.

    ``engine="local"``: ``workers`` concurrent calls on one loaded model (its states share
    the weights) with ``threads_per_worker`` threads each; by default one single-threaded
    worker per core. ``engine="ray"``: Ray actors, each loading the model once and running
    ``states_per_actor`` of the workers; ``address`` is a Ray cluster (default: the
    running Ray session, else a new local one); ``write_on="driver"`` returns outputs to
    this process, ``"workers"`` lets the actors write them (``out_dir`` must then be shared
    storage). Other keywords (``language``, ``beam_size``, ``token_timestamps``, ``vad`` ...)
    go to ``Model.transcribe``. KeyboardInterrupt stops the running files, writes the
    summary (``interrupted: true``) and is raised again: no output file is ever partial.
    """
    from ..models.store import DEFAULT_MODEL

    if engine not in ENGINES:
        raise OptionError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    if write_on not in ("driver", "workers"):
        raise OptionError(f"write_on must be 'driver' or 'workers', got {write_on!r}")
    if states_per_actor < 1:
        raise OptionError("states_per_actor must be 1 or more")
    formats = _formats(formats)
    _check_options(preset, options)
    model = os.fspath(model) if model is not None else DEFAULT_MODEL
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    items = expand_inputs(inputs)
    todo = [it for it in items if overwrite or not outputs_complete(it, out, formats)]
    # Longest first (file size as the measure): the last file to finish is a short one.
    todo.sort(key=lambda it: -it.size)
    settings: Dict[str, object] = {"engine": engine, "model": model, "formats": formats, "preset": preset or "accurate",
                                   "out_dir": str(out)}
    tally = Tally(out, len(items), settings, progress)
    tally.skip(len(items) - len(todo))
    interrupted = False
    try:
        if engine == "local":
            from ..threads import cpu_count

            w, t = plan_layout(cpu_count(), workers, threads_per_worker, n_files=len(todo))
            settings.update(workers=w, threads_per_worker=t)
            if todo:
                _run_local(todo, out, Job(model, t, formats, preset, dict(options)), w, tally)
        else:
            from .ray_engine import run_ray

            run_ray(todo, out, formats=formats, preset=preset, options=dict(options), model=model,
                    workers=workers, threads_per_worker=threads_per_worker, states_per_actor=states_per_actor,
                    address=address, write_on=write_on, tally=tally, settings=settings)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        summary = tally.finish(interrupted)
    return summary


def _run_local(todo: List[Item], out: Path, job: Job, workers: int, tally: Tally) -> None:
    """``workers`` threads, each taking the next file and transcribing it on its own state of
    one model (the GIL is released during the native run: the states run in parallel)."""
    fw = FileWorker(job, n_states=workers)
    pending: "queue.Queue[Item]" = queue.Queue()
    for it in todo:
        pending.put(it)
    results: "queue.Queue[Outcome]" = queue.Queue()

    def loop() -> None:
        while not fw.stopping.is_set():
            try:
                it = pending.get_nowait()
            except queue.Empty:
                return
            results.put(fw.process(it.path, [str(p) for p in it.outputs(out, job.formats)]))

    threads = [threading.Thread(target=loop, name=f"batch-worker-{i}", daemon=True)
               for i in range(min(workers, len(todo)))]
    try:
        for t in threads:
            t.start()
        received = 0
        while received < len(todo):
            try:
                outcome = results.get(timeout=0.2)  # a timeout: Ctrl-C is seen at once
            except queue.Empty:
                if not any(t.is_alive() for t in threads) and results.empty():
                    break
                continue
            received += 1
            tally.add(outcome)
            if outcome.fatal:
                raise BatchError(f"{outcome.path}: {outcome.message}")
    except BaseException:
        # Stop: running calls are cancelled (no output written for them); a file whose
        # outputs are being renamed into place finishes that, so none is left partial.
        fw.stop()
        while any(t.is_alive() for t in threads):
            fw.model.cancel()
            for t in threads:
                t.join(0.05)
        while not results.empty():
            tally.add(results.get_nowait())
        raise
    finally:
        for t in threads:
            t.join()
        fw.close()
