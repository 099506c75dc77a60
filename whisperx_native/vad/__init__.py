"""Voice-activity detection: Silero (whisper.cpp's VAD network, run by the native
``VadContext``) and the two policies built on it.

* :mod:`.silero`: the model file: the default one, validated before whisper.cpp reads it, loaded;
* :mod:`.chunks`: offline, for files: speech packed into chunks of one window, times mapped
  back to the file (``Model``'s long-form path);
* :mod:`.streaming`: online, for streams: utterance boundaries as audio arrives
  (``realtime.StreamingTranscriber``).
"""

from .chunks import Chunk, TimeMap, plan_chunks, remap_segment
from .silero import VadModelInfo, default_vad_model, load_vad, validate_vad_model
from .streaming import StreamingVad, VadBoundary

__all__ = ["Chunk", "TimeMap", "plan_chunks", "remap_segment", "VadModelInfo", "default_vad_model", "load_vad",
           "validate_vad_model", "StreamingVad", "VadBoundary"]
