"""Long files without their samples in memory: decoded block by block into a disk spool,
the VAD and the pause envelope fed on the way.

``Model.transcribe(path)`` reads a path with :func:`read_path`. The first window's worth of
samples is kept in memory; a file that ends there (or one the call needs whole: ``vad=False``,
``offset_ms`` ...) is an ordinary array, exactly ``load_audio``'s. A longer file on the
long-form path goes, from its first sample, to

* a :class:`Spool`: the 16 kHz float32 samples in an already-unlinked temporary file
  (``tempfile.TemporaryFile``, so nothing is left behind even when the process dies), read
  back with ``os.pread`` one chunk's pieces at a time (``samples[a:b]``: what
  ``Chunk.audio``, ``pipeline.run_chunk`` and language detection take);
* the Silero VAD, fed in blocks of whole 512-sample frames (its LSTM state carried over,
  ``VadContext.detect(reset=False)``), its probabilities segmented at the end with
  ``VadContext.segments_from_probs``: the same segments as one call over the whole array;
* for ``word_timestamps`` with snapping, a :class:`~whisperx_native.words.Loudness`
  envelope: the same pauses as ``words.pauses`` of the whole array.

So the transcript is the in-memory path's, to the token and the millisecond, and the
call's memory does not grow with the file: 4 bytes per 512 samples of VAD probabilities and
4 per 160 of loudness (0.5 MB and 1.4 MB an hour), never the 230 MB an hour of samples. The
spool takes 230 MB an hour of disk in ``tempfile.gettempdir()`` (``$TMPDIR``; on a tmpfs
that is memory, though not this process's RSS) while the call runs.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple, Union

import numpy as np

from .audio import SAMPLE_RATE, load_audio, stream_audio
from .errors import AudioError, Cancelled, OptionError, OptionTypeError
from .options import WINDOW_SECONDS

__all__ = ["HEAD_SAMPLES", "ReadFile", "Spool", "StreamPlan", "declared_seconds", "for_transcribe", "pauses_of",
           "read_path"]

#: Samples kept in memory before a file counts as long: one window (a shorter file is
#: transcribed in one pass, never chunked by default: pipeline.use_chunks).
HEAD_SAMPLES = int(WINDOW_SECONDS * SAMPLE_RATE)

#: Samples per VAD probability (Silero at 16 kHz).
VAD_FRAME = 512


class Spool:
    """16 kHz float32 samples in an unlinked temporary file, appended with :meth:`write`
    and read back by slice: ``spool[a:b]`` is a fresh ndarray (``os.pread``; no memory map,
    whose touched pages would count as this process's memory). ``len``, ``size``, ``dtype``
    and ``ndim`` as a 1-D array's. Thread-safe reads; close it (or use ``with``) when done."""

    dtype = np.dtype(np.float32)
    ndim = 1

    def __init__(self, dir: Optional[str] = None) -> None:
        self._file = tempfile.TemporaryFile(dir=dir, buffering=0)
        self._fd = self._file.fileno()
        self._lock = threading.Lock()  # a read never meets a closed (and maybe reused) descriptor
        self.size = 0

    @property
    def shape(self) -> Tuple[int]:
        return (self.size,)

    @property
    def closed(self) -> bool:
        return self._file.closed

    def __len__(self) -> int:
        return self.size

    def write(self, samples: np.ndarray) -> None:
        """Append ``samples`` (float32, 1-D)."""
        x = np.ascontiguousarray(samples, dtype=np.float32)
        view = memoryview(x).cast("B")
        pos = self.size * 4
        while view:
            done = os.pwrite(self._fd, view, pos)
            view, pos = view[done:], pos + done
        self.size += x.size

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice):
            raise OptionTypeError(f"a Spool is read by slices (spool[a:b]), not by {type(key).__name__}")
        a, b, step = key.indices(self.size)
        if step != 1:
            raise OptionError("a Spool is read by contiguous slices (step 1)")
        out = np.empty(max(0, b - a), np.float32)
        view, pos = memoryview(out).cast("B"), a * 4
        with self._lock:
            if self._file.closed:
                raise AudioError("the samples' temporary file is closed (the read failed or the call ended)")
            while view:
                got = os.preadv(self._fd, [view], pos)
                if got <= 0:
                    raise AudioError(f"the temporary file of the samples ended early at byte {pos}")
                view, pos = view[got:], pos + got
        return out

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> "Spool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<whisperx_native Spool {self.size} samples{' closed' if self.closed else ''}>"


@dataclass(frozen=True)
class StreamPlan:
    """What a long file's decode feeds besides the spool: Silero VAD with ``vad_model`` and
    segmentation ``vad_params`` (pipeline.vad_parameters), and the pause envelope when
    ``gaps`` (word timestamps snapped to pauses). ``opts``: the call's options, resolved
    when the file turned out long (handed back in :class:`ReadFile`)."""

    vad_model: object
    vad_params: dict
    gaps: bool = False
    opts: object = None


@dataclass
class ReadFile:
    """A path read for transcription: ``samples`` is an ndarray (a short file, or one the
    call needs whole) or a :class:`Spool` (a long file: then ``speech``, ``vad_ms``, ``gaps``
    and ``opts`` are filled in). Close it when the call is done (the spool's file goes)."""

    samples: Union[np.ndarray, Spool]
    speech: Optional[List[Tuple[float, float]]] = None
    vad_ms: float = 0.0
    gaps: Optional[List[Tuple[float, float]]] = None
    opts: object = None
    decode_ms: float = 0.0

    @property
    def streamed(self) -> bool:
        return isinstance(self.samples, Spool)

    def close(self) -> None:
        if isinstance(self.samples, Spool):
            self.samples.close()

    def __enter__(self) -> "ReadFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _WholeFile(Exception):
    """The call needs the whole file in memory (decided once it turned out long)."""


class _Reader:
    """The sink of :func:`stream_audio` for :func:`read_path`."""

    def __init__(self, decide: Callable[[int], Optional[StreamPlan]], cancelled: Optional[Callable[[], bool]],
                 head_samples: int, spool_dir: Optional[str],
                 on_vad: Optional[Callable[["_Reader"], None]] = None) -> None:
        self.decide, self.cancelled, self.on_vad = decide, cancelled, on_vad
        self.head_samples, self.spool_dir = head_samples, spool_dir
        self.head: List[np.ndarray] = []
        self.n_head = 0
        self.plan: Optional[StreamPlan] = None
        self.spool: Optional[Spool] = None
        self.vad = None
        self.probs: List[np.ndarray] = []
        self.rest = np.zeros(0, np.float32)  # samples of a VAD frame not yet complete
        self.vad_s = 0.0
        self.loudness = None

    def __call__(self, block: np.ndarray) -> None:
        if self.cancelled is not None and self.cancelled():
            raise Cancelled("transcription cancelled")
        if self.spool is None:
            self.head.append(block)
            self.n_head += block.size
            if self.n_head > self.head_samples:
                self._start()
            return
        self._feed(block)

    def _start(self) -> None:
        """The file is long: from its first sample on, to the spool, the VAD and the envelope."""
        plan = self.decide(self.n_head)
        if plan is None:
            raise _WholeFile
        self.plan = plan
        from .vad.silero import load_vad

        t = time.perf_counter()
        self.spool = Spool(self.spool_dir)
        self.vad, _info = load_vad(plan.vad_model, n_threads=1)  # validated first: whisper.cpp trusts its input
        self.vad_s += time.perf_counter() - t
        if plan.gaps:
            from .words import Loudness

            self.loudness = Loudness()
        head, self.head = np.concatenate(self.head), []
        self._feed(head)

    def _feed(self, x: np.ndarray) -> None:
        self.spool.write(x)
        if self.loudness is not None:
            self.loudness.add(x)
        if self.rest.size:
            x = np.concatenate([self.rest, x])
        whole = x.size // VAD_FRAME * VAD_FRAME
        if whole:
            t = time.perf_counter()
            self.probs.append(self.vad.detect(x[:whole], reset=not self.probs))
            self.vad_s += time.perf_counter() - t
        self.rest = x[whole:].copy()
        if whole and self.on_vad is not None:
            self.on_vad(self)

    def speech_so_far(self) -> Tuple[List[Tuple[float, float]], int]:
        """(speech segments, samples they cover) of the VAD so far: the end is provisional
        (a segment still open, pauses not yet long enough), what lies well before it is not."""
        probs = np.concatenate(self.probs)
        return self.vad.segments_from_probs(probs, **self.plan.vad_params), probs.size * VAD_FRAME

    def finish(self) -> ReadFile:
        if self.spool is None:  # a short file: in memory, as load_audio gives it
            samples = self.head[0] if len(self.head) == 1 else np.concatenate(self.head)
            self.head = []
            return ReadFile(samples)
        t = time.perf_counter()
        if self.rest.size:  # the last partial frame: zero-padded as in one call over everything
            self.probs.append(self.vad.detect(self.rest, reset=not self.probs))
        probs = np.concatenate(self.probs)
        self.probs = []
        speech = self.vad.segments_from_probs(probs, **self.plan.vad_params)
        self.vad_s += time.perf_counter() - t
        gaps = self.loudness.pauses() if self.loudness is not None else None
        return ReadFile(self.spool, speech, self.vad_s * 1000, gaps, self.plan.opts)

    def close_vad(self) -> None:
        if self.vad is not None:
            self.vad.close()
            self.vad = None


def read_path(path, decide: Callable[[int], Optional[StreamPlan]], *,
              cancelled: Optional[Callable[[], bool]] = None, head_samples: int = HEAD_SAMPLES,
              spool_dir: Optional[str] = None, on_vad: Optional[Callable[[_Reader], None]] = None) -> ReadFile:
    """Read the audio file ``path`` for one transcription (see the module).

    Once more than ``head_samples`` have been decoded, ``decide(n)`` says what the call
    needs: a :class:`StreamPlan` (the long-form path: spool, VAD, envelope) or None (the
    whole file in memory: it is then read again with ``load_audio``). ``cancelled()`` is
    asked before each block; True stops the read with ``Cancelled``. Errors are
    ``load_audio``'s; on any of them the spool is closed before it propagates. ``on_vad(reader)``
    is called after each block the VAD ran on (``reader.spool``, ``reader.speech_so_far()``)."""
    reader = _Reader(decide, cancelled, head_samples, spool_dir, on_vad)
    t = time.perf_counter()
    try:
        stream_audio(path, reader)
        out = reader.finish()
    except _WholeFile:
        return ReadFile(load_audio(path), decode_ms=(time.perf_counter() - t) * 1000)
    except BaseException:
        if reader.spool is not None:
            reader.spool.close()
        raise
    finally:
        reader.close_vad()
    out.decode_ms = (time.perf_counter() - t) * 1000 - out.vad_ms
    return out



def pauses_of(spool: Spool, block: int = 1 << 20) -> List[Tuple[float, float]]:
    """``words.pauses`` of a spool's samples, read back a block at a time."""
    from .words import Loudness

    loudness = Loudness()
    for a in range(0, spool.size, block):
        loudness.add(spool[a:a + block])
    return loudness.pauses()


def for_transcribe(path, load: Optional[Callable[[], np.ndarray]] = None) -> Tuple[Union[str, np.ndarray], float]:
    """What a caller holding a file hands ``Model.transcribe``, with its length in seconds: the
    path itself when the header declares more than one window (transcribe then reads it block
    by block, never whole), else its samples (``load()``, default ``load_audio(path)``)."""
    declared = declared_seconds(path)
    if declared is not None and declared * SAMPLE_RATE > HEAD_SAMPLES:
        return path, declared
    samples = load() if load is not None else load_audio(path)
    return samples, samples.size / SAMPLE_RATE


def declared_seconds(path) -> Optional[float]:
    """The duration a regular audio file's header declares (formats libsndfile reads), without
    decoding it; None when there is none to read (another format, not a regular file, an
    unreadable header). A hint for callers that choose between a path and samples: the
    decode itself checks everything again."""
    from .audio import _open_regular

    try:
        f, _p, _size = _open_regular(path)
    except AudioError:
        return None
    with f:
        try:
            import soundfile as sf

            with sf.SoundFile(f) as snd:
                return snd.frames / snd.samplerate if snd.samplerate > 0 and snd.frames >= 0 else None
        except Exception:
            return None
