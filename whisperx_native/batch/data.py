"""``RayTranscriber``: the model as a Ray Data batch UDF.

    import ray
    from whisperx_native.batch import RayTranscriber

    ds = ray.data.from_items([{"path": p} for p in paths])        # or rows of audio + sample_rate
    ds = ds.map_batches(RayTranscriber, fn_constructor_kwargs={"model": "base", "language": "en"},
                        concurrency=4, batch_size=8, num_cpus=1)
    ds.write_parquet("transcripts/")                             # text, language, segments (JSON) per row

Ray Data builds one instance per actor of its pool (the model loads once per actor) and
calls it with batches of rows. Each row has ``path`` (an audio or video file the worker
can read), or ``audio`` (samples: 1-D float32/float64/int16) and ``sample_rate`` (any
rate: resampled to 16 kHz). The batch comes back with its other columns and ``text``,
``language``, ``segments`` (the segments as a JSON string: start, end, text, and words
with ``token_timestamps=True``), ``audio_seconds`` and ``error`` (``""`` or
``"ErrorType: message"``: a bad row does not fail the dataset). The ``audio`` column
is dropped from the output. It needs nothing from Ray itself: it works on any dict of
columns, which is what tests and other engines can call it with.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Mapping, Optional

import numpy as np

from ..errors import OptionError, OptionTypeError

__all__ = ["RayTranscriber"]


class RayTranscriber:
    """Callable class for ``Dataset.map_batches``: ``model`` (name or ggml path),
    ``n_threads`` per call (default 1: give each actor ``num_cpus`` = n_threads × n_states),
    ``n_states`` rows of a batch transcribed at once on one copy of the weights,
    ``preset``, and any ``Model.transcribe`` keyword (``language``, ``beam_size`` ...)."""

    def __init__(self, model: "str | os.PathLike" = "base", *, n_threads: int = 1, n_states: int = 1,
                 preset: Optional[str] = None, **options: Any) -> None:
        from ..model import Model

        self.n_states = max(1, int(n_states))
        self.model = Model(model, n_threads=n_threads, adapt_threads=False, max_idle_states=self.n_states)
        self.preset = preset
        self.options = options
        self._pool = ThreadPoolExecutor(self.n_states) if self.n_states > 1 else None

    def _one(self, path: Any, audio: Any, rate: Any) -> Dict[str, Any]:
        from ..audio import SAMPLE_RATE

        try:
            if path is not None and not (isinstance(path, float) and np.isnan(path)) and str(path):
                from ..filestream import for_transcribe

                samples, _seconds = for_transcribe(str(path))  # a long file: its path, read block by block
            else:
                samples = _resampled(audio, int(rate) if rate is not None else SAMPLE_RATE)
            result = self.model.transcribe(samples, preset=self.preset, **self.options)
        except Exception as exc:
            return {"text": "", "language": "", "segments": "[]", "audio_seconds": 0.0,
                    "error": f"{type(exc).__name__}: {exc}"}
        segments = [_segment_dict(s) for s in result.segments]
        return {"text": result.text, "language": result.language or "",
                "segments": json.dumps(segments, ensure_ascii=False),
                "audio_seconds": result.timings["audio_seconds"], "error": ""}

    def __call__(self, batch: Any) -> Dict[str, Any]:
        columns = _columns(batch)
        n = len(next(iter(columns.values()))) if columns else 0
        paths = columns.get("path")
        audios = columns.get("audio")
        rates = columns.get("sample_rate")
        if paths is None and audios is None:
            raise OptionError("RayTranscriber needs a 'path' column, or 'audio' and 'sample_rate' columns")
        args = [(paths[i] if paths is not None else None, audios[i] if audios is not None else None,
                 rates[i] if rates is not None else None) for i in range(n)]
        if self._pool is not None:
            rows = list(self._pool.map(lambda a: self._one(*a), args))
        else:
            rows = [self._one(*a) for a in args]
        out: Dict[str, Any] = {k: v for k, v in columns.items() if k != "audio"}
        for key in ("text", "language", "segments", "error"):
            out[key] = np.array([r[key] for r in rows], dtype=object)
        out["audio_seconds"] = np.array([r["audio_seconds"] for r in rows], dtype=np.float64)
        return out

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False)
        model = getattr(self, "model", None)
        if model is not None:
            model.close()


def _columns(batch: Any) -> Dict[str, Any]:
    if isinstance(batch, Mapping):
        return dict(batch)
    if hasattr(batch, "to_dict") and hasattr(batch, "columns"):       # pandas
        return {c: batch[c].to_numpy() for c in batch.columns}
    if hasattr(batch, "to_pydict"):                                    # pyarrow
        return batch.to_pydict()
    raise OptionTypeError(f"cannot read a batch of type {type(batch).__name__}: use batch_format='numpy' or 'pandas'")


def _resampled(audio: Any, rate: int) -> np.ndarray:
    from ..audio import SAMPLE_RATE, as_samples, to_float32

    a = np.asarray(audio)
    if a.dtype == object:
        a = np.asarray(list(a))
    if rate != SAMPLE_RATE:
        import soxr

        a = soxr.resample(to_float32(a), rate, SAMPLE_RATE)
    return as_samples(np.ascontiguousarray(a))


def _segment_dict(seg) -> Dict[str, Any]:
    d: Dict[str, Any] = {"start": seg.start, "end": seg.end, "text": seg.text}
    words = getattr(seg, "words", None)
    if words:
        d["words"] = [{"start": w.start, "end": w.end, "text": w.text, "probability": w.probability} for w in words]
    return d
