"""Batch transcription: a folder on one machine, thousands of files on a Ray cluster.

    from whisperx_native.batch import transcribe_many
    summary = transcribe_many(["interviews/", "@more.txt"], "transcripts/", formats="json,srt",
                              model="base.en", workers=4)

* ``transcribe_many`` (``api.py``): inputs → outputs mirroring the folders, resumable
  (done files are skipped), failures recorded in ``failures.jsonl``, ``summary.json``.
* engines: ``"local"`` (threads on the states of one loaded model) and ``"ray"``
  (``ray_engine.py``: an actor per worker slot, model loaded once per actor).
* ``RayTranscriber`` (``data.py``): a Ray Data ``map_batches`` UDF.
* ``cli.py``: the ``batch`` subcommand (``python -m whisperx_native.batch``).

Ray is optional (``pip install "whisperx_native[ray]"``): only the ray engine imports it.
"""

from .api import BatchError, plan_layout, transcribe_many
from .data import RayTranscriber
from .inputs import AUDIO_EXTENSIONS, expand_inputs

__all__ = ["AUDIO_EXTENSIONS", "BatchError", "RayTranscriber", "expand_inputs", "plan_layout", "transcribe_many"]
