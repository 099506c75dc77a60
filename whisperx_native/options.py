"""Decoding options and the presets users pick between.

Defaults favour accuracy, as whisper-cli and faster-whisper users expect: beam
search (5), temperature fallback (0.0 → 1.0 in 0.2 steps, decided by the entropy and
log-probability thresholds), timestamps on. ``preset="fast"`` is greedy with no
fallback, no conditioning on the previous window's text and, for audio shorter than
one 30 s window, an encoder context trimmed to the audio's length.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from .threads import default_threads  # noqa: F401 - public here too (the thread policy is threads.py)

__all__ = ["DecodeOptions", "PRESETS", "audio_ctx_for", "default_threads", "resolve_options"]

WINDOW_SECONDS = 30.0
N_AUDIO_CTX = 1500           # encoder positions per 30 s window (all Whisper sizes)
MIN_FAST_AUDIO_CTX = 512     # below this the encoder loses too much context (measured: accuracy drops)
# whisper.cpp pads the cross-attention KV cache to a multiple of 256 positions and, with
# flash attention, does not mask the padding: a shorter audio_ctx on a state that ran a
# longer one reads stale audio there (wrong text). Multiples of 256 leave no padding.
AUDIO_CTX_STEP = 256


@dataclass(frozen=True)
class DecodeOptions:
    """Everything that steers one ``whisper_full`` run.

    ``language=None`` auto-detects (with probabilities, multilingual models only).
    ``beam_size=1`` means greedy decoding. ``temperature_increment=0`` disables the
    temperature fallback.
    """

    language: Optional[str] = None
    translate: bool = False
    n_threads: int = 0                   # 0: threads.default_threads()
    # Threads of the token-by-token decoder passes (0: n_threads; vendor/patches/0002).
    decode_threads: int = 0
    beam_size: int = 5
    # Beam search ends when beam_size x patience hypotheses have finished (openai-whisper's
    # and faster-whisper's option); the best is chosen by summed log-probability over
    # length, or over ((5 + length) / 6) ** length_penalty when that is set.
    patience: float = 1.0
    length_penalty: Optional[float] = None
    best_of: int = 5
    temperature: float = 0.0
    temperature_increment: float = 0.2
    entropy_threshold: float = 2.4
    logprob_threshold: float = -1.0
    # A window whose text gzip compresses more than this is a repetition loop: the next
    # temperature is tried (faster-whisper's test; 0 turns it off).
    compression_ratio_threshold: float = 2.4
    no_speech_threshold: float = 0.6
    # A window samples at most this many tokens per second of its audio, plus a second's
    # worth; a decoder caught in a loop fails there, as at whisper.cpp's 220 (0: only that).
    # Speech needs under ten a second (vendor/patches/0026).
    max_tokens_per_second: float = 20.0
    initial_prompt: Optional[str] = None
    carry_initial_prompt: bool = False
    # True (whisper.cpp's default): each call starts without the text of the state's previous
    # call as prompt; inside one call, earlier windows still condition later ones. False would
    # let a pooled state carry one call's transcript into the next.
    no_context: bool = True
    # Inside one call, feed each window's text to the next as a prompt (whisper.cpp's
    # n_max_text_ctx, faster-whisper's option of the same name). Without temperature
    # fallback nothing stops a repetition loop from propagating through it: the fast preset
    # turns it off (tiny.en, greedy, 191 s bench file: 24.6 % WER with it, 8.7 % without).
    condition_on_previous_text: bool = True
    timestamps: bool = True
    token_timestamps: bool = False
    # Word times from the alignment heads' cross-attention and DTW (openai-whisper's and
    # faster-whisper's word_timestamps); fills each segment's ``words``.
    word_timestamps: bool = False
    single_segment: bool = False
    max_segment_length: int = 0          # characters; 0 = no limit
    split_on_word: bool = False
    max_tokens: int = 0                  # per segment; 0 = no limit
    suppress_blank: bool = True
    # Symbols that are not speech (♪, brackets, ...): suppressed by default, as openai-whisper's
    # and faster-whisper's suppress_tokens=[-1] does.
    suppress_non_speech: bool = True
    # Encoder positions (1500: a whole 30 s window; 0 means the same). None: the preset's
    # choice, the whole window, or for the fast preset each run's audio, checked (pipeline.full_run).
    audio_ctx: Optional[int] = None
    offset_ms: int = 0
    duration_ms: int = 0
    # Long-form transcription: Silero VAD finds the speech, packed into chunks of at most one
    # window that are transcribed independently and in parallel (planned in pipeline.py, run by
    # engine.py). None: for audio
    # longer than one window; True: always; False: one whisper.cpp pass over the whole audio.
    vad: Optional[bool] = None
    # States working on chunks at once (0: one per thread of the call, each on one thread).
    chunk_workers: int = 0
    # The audio is known to be speech (a chunk of voice activity): a window whose text ends
    # early resumes at its last timestamp instead of skipping the rest as silence. Set by
    # the long-form path for its chunks.
    speech_only: bool = False
    # No 30-s window starts at or after this time (ms; 0: no limit): set by the long-form path
    # where a chunk's speech ends, so its padding is not encoded again for nothing.
    window_start_limit_ms: int = 0
    # What the first window's transcript is known to begin with (openai-whisper's and
    # faster-whisper's ``prefix``): a text, or timed text ``((start_s, end_s, text), ...)`` in
    # seconds from the start of the audio. Decoded as given and not part of the result: the
    # text sampled after it continues it (vendor/patches/0019). The streaming transcriber
    # decodes an utterance's final with the audio before it and that audio's final text
    # as a timed prefix.
    prefix: Optional[object] = None
    vad_model: Optional[str] = None      # Silero ggml file; None: the packaged one
    # (name, value) pairs for the VAD's segmentation: threshold, min_speech_ms, min_silence_ms,
    # max_speech_s, speech_pad_ms (compat.py maps faster-whisper's vad_parameters to them).
    vad_parameters: tuple = ()

    def replace(self, **changes) -> "DecodeOptions":
        return dataclasses.replace(self, **changes)


PRESETS = {
    "accurate": DecodeOptions(),
    "fast": DecodeOptions(beam_size=1, best_of=1, temperature_increment=0.0, condition_on_previous_text=False),
}

_FIELDS = {f.name for f in dataclasses.fields(DecodeOptions)}


def resolve_options(preset: Optional[str], overrides: dict, n_threads: int) -> DecodeOptions:
    """Preset + explicit keyword overrides → validated DecodeOptions for one call."""
    from .compat import translate_options  # faster-whisper's keyword names → these fields

    overrides = translate_options(overrides)
    name = preset or "accurate"
    from .errors import OptionError, OptionTypeError
    from .validation import validate_options

    opts = PRESETS.get(name) if isinstance(name, str) else None
    if opts is None:
        raise OptionError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    unknown = set(overrides) - _FIELDS
    if unknown:
        raise OptionTypeError(f"unknown transcription option(s): {', '.join(sorted(unknown))}")
    opts = validate_options(opts.replace(**overrides))  # types, ranges, finiteness: before native code
    if opts.language in ("auto", ""):
        opts = opts.replace(language=None)
    if not opts.n_threads:
        opts = opts.replace(n_threads=n_threads)
    if opts.n_threads < 1:
        raise OptionError(f"n_threads must be >= 1, got {opts.n_threads}")
    if opts.audio_ctx is not None and 0 < opts.audio_ctx < N_AUDIO_CTX:
        opts = opts.replace(audio_ctx=_round_audio_ctx(opts.audio_ctx))
    return opts


def audio_ctx_for(seconds: float, headroom: int = 64) -> int:
    """Encoder positions for a clip shorter than a window: what the audio needs plus
    ``headroom``, at least MIN_FAST_AUDIO_CTX, rounded to a safe size. The encoder's cost
    grows with its positions, so short audio need not pay for a full 30 s window."""
    need = int(seconds / WINDOW_SECONDS * N_AUDIO_CTX) + headroom
    return _round_audio_ctx(max(MIN_FAST_AUDIO_CTX, need))


def _round_audio_ctx(n: int) -> int:
    """Up to the next multiple of AUDIO_CTX_STEP (or the full 1500)."""
    return min(N_AUDIO_CTX, -(-n // AUDIO_CTX_STEP) * AUDIO_CTX_STEP)
