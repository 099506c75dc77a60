# Hand-written stubs for the compiled whisperx_native._native._core module.
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

SAMPLE_RATE: int
MAX_DECODERS: int

class RawToken(NamedTuple):
    id: int
    text: bytes
    p: float
    logprob: float
    t0: float                    # whisper.cpp's token timestamps (-0.01: not computed)
    t1: float
    dtw_start: Optional[float]   # word_timestamps: where the DTW path enters the token
    dtw_end: Optional[float]     # ... and where it enters the next one (or end of text)

class RawSegment(NamedTuple):
    t0: float
    t1: float
    text: str
    no_speech_prob: float
    speaker_turn_next: bool
    tokens: Optional[List[RawToken]]

#: (whisper.cpp function, return code) -> reason: every native failure the binding reports
STATUS: Dict[Tuple[str, int], str]

AlignmentHeads = Union[str, Tuple[str, int], Sequence[Tuple[int, int]]]
ALIGNMENT_HEADS: Dict[str, int]
KV_TYPES: Dict[str, int]

def version() -> str: ...
def system_info() -> str: ...
def build_info() -> Dict[str, Any]: ...
def languages() -> Dict[str, str]: ...
def lang_id(code: str) -> int: ...

class Context:
    path: str
    load_ms: float
    sizes: Dict[str, int]
    alignment_heads: Optional[AlignmentHeads]
    info: Any  # whisperx_native.models.ggml_file.ModelInfo
    k_type: str
    v_type: str
    def __init__(self, path: str, *, use_gpu: bool = ..., flash_attn: bool = ..., gpu_device: int = ...,
                 alignment_heads: Optional[AlignmentHeads] = ..., info: Any = ..., k_type: str = ...,
                 v_type: str = ...) -> None: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Context": ...
    def __exit__(self, *exc: object) -> bool: ...
    def hparams(self) -> Dict[str, int]: ...
    @property
    def model_type(self) -> str: ...
    @property
    def multilingual(self) -> bool: ...
    @property
    def n_vocab(self) -> int: ...
    def new_state(self) -> "State": ...

class State:
    sizes: Dict[str, int]
    def __init__(self, ctx: Context) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def context(self) -> Optional[Context]: ...
    def close(self) -> None: ...
    def __enter__(self) -> "State": ...
    def __exit__(self, *exc: object) -> bool: ...
    def cancel(self, generation: Optional[int] = ...) -> None: ...
    def claim(self) -> int: ...
    @property
    def generation(self) -> int: ...
    def memory(self) -> Dict[str, int]: ...
    def detect_language(self, samples: Optional[np.ndarray] = ..., n_threads: int = ..., *,
                        mel: Optional[np.ndarray] = ...) -> Dict[str, float]: ...
    def full(
        self,
        samples: np.ndarray,
        opts: Any,
        *,
        on_progress: Optional[Callable[[int], None]] = ...,
        on_segment: Optional[Callable[[RawSegment], None]] = ...,
        token_details: bool = ...,
        mel: Optional[np.ndarray] = ...,
        mel_frames: int = ...,
        # (token ids so far, writable float32 logits of n_vocab): known logits for tests
        logits_filter: Optional[Callable[[List[int], Any], None]] = ...,
    ) -> Dict[str, Any]: ...

# vad.pxi: Silero voice-activity detection
class VadContext:
    path: str
    n_threads: int
    def __init__(self, path: str, *, n_threads: int = ...) -> None: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> "VadContext": ...
    def __exit__(self, *exc: object) -> bool: ...
    def reset(self) -> None: ...
    def detect(self, samples: Any, reset: bool = ...) -> np.ndarray: ...
    def segments(
        self,
        samples: Any,
        *,
        threshold: float = ...,
        min_speech_ms: int = ...,
        min_silence_ms: int = ...,
        max_speech_s: float = ...,
        speech_pad_ms: int = ...,
        overlap_s: float = ...,
    ) -> List[Tuple[float, float]]: ...
    def segments_from_probs(
        self,
        probs: Any,
        *,
        threshold: float = ...,
        min_speech_ms: int = ...,
        min_silence_ms: int = ...,
        max_speech_s: float = ...,
        speech_pad_ms: int = ...,
        overlap_s: float = ...,
    ) -> List[Tuple[float, float]]: ...

# quantize.pxi: ggml's quantization kernels
def quant_type_info(type_id: int) -> Tuple[int, int, bool]: ...
def quantize_rows(type_id: int, src: np.ndarray, dst: np.ndarray) -> int: ...
def mul_mat(type_id: int, weights: np.ndarray, rows: int, x: np.ndarray, n_threads: int = ...) -> np.ndarray: ...
def soft_max(x: np.ndarray, n_threads: int = ...) -> np.ndarray: ...
