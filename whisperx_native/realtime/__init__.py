"""Real-time transcription: capture → ring buffer → VAD → whisper → partial/final events.

    import whisperx_native as wn
    from whisperx_native.realtime import RingBuffer, StreamingTranscriber, microphone

    ring = RingBuffer(30.0, input_rate=48000, input_channels=1)
    mic = microphone(ring)                       # sounddevice (the `mic` extra)
    with wn.Model("tiny.en") as model:
        for ev in StreamingTranscriber(model, ring).events():
            print(ev.kind, f"{ev.start:.2f}-{ev.end:.2f}", ev.text)
"""

from .events import DEGRADED, FINAL, OVERFLOW, PARTIAL, RECOVERED, StreamEvent
from .governor import LatencyGovernor
from .ringbuffer import RingBuffer, to_mono_float32
from .sources import SimulatedCapture, microphone, to_capture_format
from .transcriber import StreamingTranscriber
from ..vad import StreamingVad, VadBoundary, default_vad_model, load_vad, validate_vad_model

__all__ = [
    "RingBuffer", "StreamingTranscriber", "StreamEvent", "StreamingVad", "VadBoundary", "LatencyGovernor",
    "SimulatedCapture", "microphone", "to_capture_format", "to_mono_float32", "default_vad_model",
    "load_vad", "validate_vad_model", "PARTIAL", "FINAL", "DEGRADED", "RECOVERED", "OVERFLOW",
]
