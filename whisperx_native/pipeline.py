"""The pipeline: every policy decision of a transcription, testable without a model.

audio in → validated samples (audio.py) → options (preset + keywords, the thread policy of
threads.py, the language checked) → a :class:`Plan` (one pass, or VAD chunks on several
states, threads per state, language to detect or not) → features (the log-mel spectrogram,
computed once per native run) → segments, words and timings assembled from the native
layer's raw records (``RawSegment``/``RawToken``, read by attribute).

Nothing here owns native memory: the engine (engine.py) holds the states and runs the work
this module describes; ``Model`` (model.py) joins the two. The functions that take a
``state`` only call its ``detect_language``/``full``, so any object with those serves.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from . import _native, features, threads
from .audio import SAMPLE_RATE
from .errors import ModelError, OptionError, OptionTypeError
from .models import registry, store
from .options import N_AUDIO_CTX, WINDOW_SECONDS, DecodeOptions, audio_ctx_for, resolve_options
from .result import Segment, Token
from .vad import Chunk, TimeMap, plan_chunks, remap_segment
from .validation import check_int
from .words import NO_SPACE_LANGUAGES, DtwWords, TokenTimeWords, as_token

__all__ = ["CHUNK_VAD", "MIN_SAMPLES", "Features", "Plan", "alignment_heads_for", "around_speech", "check_language",
           "clamp_threads", "detect_language", "full_run", "make_plan", "resolve", "run_chunk", "segment", "segments",
           "sum_timings", "timings", "use_chunks", "vad_parameters", "word_builder"]

log = logging.getLogger("whisperx_native")

#: whisper.cpp skips input shorter than 100 ms (10 mel frames).
MIN_SAMPLES = SAMPLE_RATE // 10

#: Silero segmentation for long-form chunks, faster-whisper's batched pipeline's: a 160 ms
#: pause ends a segment, 400 ms of padding, speech split at the window's length;
#: vad_parameters override them.
CHUNK_VAD = {"min_silence_ms": 160, "speech_pad_ms": 400, "max_speech_s": WINDOW_SECONDS - 1.0}


# ---------------------------------------------------------------------- model-level choices
def clamp_threads(n: Optional[int]) -> int:
    """A model's thread count: None or 0 for the default, never more than the cores (said)."""
    n = 0 if n is None else check_int(n, "n_threads", 0, None)
    if n == 0:
        return threads.default_threads()
    if threads.clamp(n) < n:
        log.warning("n_threads=%d is more than the %d available cores; using them all", n, threads.cpu_count())
    return threads.clamp(n)


def alignment_heads_for(value, name: str, hp):
    """``Model(alignment_heads=...)`` → what the native context takes (see Model): "auto" is
    a registry name's preset, else the one architecture ``hp`` matches, else every head of
    the last half of the decoder layers; anything else is passed on (the context checks it)."""
    if not (isinstance(value, str) and value == "auto"):
        return value  # None, a preset, ("top", n) or pairs: the native context checks them
    try:
        return registry.get(name).alignment_heads  # a registry name: its architecture's preset
    except ModelError:
        pass
    heads, exact = registry.alignment_heads_for(hp)
    if not exact:
        log.info("%s: no alignment-head preset for a model of %d decoder layers x %d heads (%s, %d mel bands); "
                 "word timestamps read every head of the last %d layers", name, hp.n_text_layer, hp.n_text_head,
                 "multilingual" if hp.is_multilingual else "English-only", hp.n_mels, heads[1])
    return heads


#: "auto" keeps the attention caches in q8_0 for models whose f16 caches of one state are at
#: least this large (small and up: 75 MB small, 201 MB medium; tiny 19 MB, base 25 MB). There
#: they are most of a state and halving them is what fits small and medium into the seed's
#: budget; on tiny.en q8_0 saved 5-8 MB of peak RSS and cost 3-8 % of a long-form run (README).
Q8_CACHES_FROM_BYTES = 64_000_000


def kv_type_for(value, *, use_gpu: bool, flash_attn: bool, hp=None) -> Tuple[str, str]:
    """``Model(kv_type=...)`` → the (K, V) types of the native context's attention caches.

    "auto": q8_0 for both where the CPU's flash attention reads them (no GPU backend) and
    the model's f16 caches of a state reach :data:`Q8_CACHES_FROM_BYTES` (``hp``: its
    hyperparameters; None counts as large); f16 otherwise. A type name sets both, a (K, V)
    pair each (the native context checks them)."""
    if isinstance(value, str) and value == "auto":
        if not flash_attn or store.on_gpu(use_gpu):
            return "f16", "f16"
        if hp is not None:
            est = registry.estimate_memory(hp, weight_bytes=0)
            if est.kv_self + est.kv_cross < Q8_CACHES_FROM_BYTES:
                return "f16", "f16"
        return "q8_0", "q8_0"
    if isinstance(value, str):
        return value, value
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(t, str) for t in value):
        return value
    raise OptionTypeError(f"kv_type must be 'auto', a type name ('f16', 'q8_0') or a (K, V) pair of them, "
                          f"got {value!r}")


# ---------------------------------------------------------------------- options of one call
def check_language(opts: DecodeOptions, multilingual: bool, name: str) -> DecodeOptions:
    """The language code lower-cased and known to whisper.cpp; English-only models refuse
    other languages and translation."""
    lang = opts.language
    if lang is not None:
        lang = lang.lower()
        if _native.lang_id(lang) < 0:
            raise OptionError(f"unknown language {opts.language!r}; use a code like 'en', 'de', or 'auto'")
        opts = opts.replace(language=lang)
    if not multilingual:
        if lang not in (None, "en"):
            raise OptionError(f"{name} is an English-only model; it cannot transcribe {lang!r}")
        if opts.translate:
            raise OptionError(f"{name} is an English-only model; translate needs a multilingual one")
    return opts


def resolve(preset: Optional[str], options: Mapping[str, object], *, n_threads: int,
            explicit_threads: bool = False, adapt_threads: bool = True, multilingual: bool = True,
            name: str = "model", load: Optional[Callable[[int], int]] = None) -> DecodeOptions:
    """Preset + keywords → validated options for one call, with its thread count.

    An explicit thread count (``Model(n_threads=N)`` → ``explicit_threads``, or
    ``transcribe(n_threads=N)``) is used as given (never more than the cores). Otherwise,
    with ``adapt_threads``, the call uses only the cores other processes leave free
    (``load``: threads.for_load): results do not depend on the thread count
    (vendor/patches/0005), so this changes speed, never text."""
    explicit = bool(options.get("n_threads")) or explicit_threads
    opts = resolve_options(preset, dict(options), n_threads)
    opts = check_language(opts, multilingual, name)  # validation clamped the threads to the cores
    if opts.decode_threads > opts.n_threads:
        raise OptionError(f"decode_threads must be 0 (= n_threads) .. n_threads ({opts.n_threads}), "
                          f"got {opts.decode_threads}")
    if adapt_threads and not explicit and opts.n_threads > 1:
        n = (load or threads.for_load)(opts.n_threads)
        if n < opts.n_threads:
            log.debug("other processes keep cores busy: %d thread(s) instead of %d", n, opts.n_threads)
            opts = opts.replace(n_threads=n, decode_threads=min(opts.decode_threads, n))
    return opts


# ---------------------------------------------------------------------- the plan
def use_chunks(opts: DecodeOptions, audio_s: float) -> bool:
    """The long-form path: asked for (``vad=True``), or by default (``vad=None``) for audio
    longer than one window when nothing needs whisper.cpp's own seek over the whole file
    (a ``prefix`` is the text of the audio's first window: one pass, not chunks)."""
    if opts.vad and opts.prefix:
        raise OptionError("a prefix is the start of one pass over the audio: it does not go with vad=True")
    if opts.vad is not None:
        return bool(opts.vad)
    return audio_s > WINDOW_SECONDS and not (opts.offset_ms or opts.duration_ms or opts.single_segment
                                             or opts.prefix)


def vad_parameters(opts: DecodeOptions) -> Dict[str, object]:
    """The Silero segmentation of the long-form path: CHUNK_VAD, ``opts.vad_parameters`` over it
    (the engine runs the VAD with them: engine.speech_segments)."""
    return {**CHUNK_VAD, **dict(opts.vad_parameters)}


@dataclass(frozen=True)
class Plan:
    """What one call will do, decided before any native state is taken.

    ``opts`` are the call's options (threads of the whole call; ``language`` as asked, None
    to detect); ``run_opts`` what each native run gets (per-state threads, ``speech_only`` on
    chunks; the language is filled in after detection). ``chunks`` is None for one
    ``whisper_full`` pass over the whole audio, else the VAD chunks in file order (empty: no
    speech, nothing to run); ``workers`` states run them at once."""

    preset: str
    opts: DecodeOptions
    run_opts: DecodeOptions
    n_samples: int
    language: Optional[str]              # decided before the run; None: detect it
    detect: bool                         # detect the language on the first 30 s first
    chunks: Optional[Tuple[Chunk, ...]] = None
    workers: int = 1
    vad_ms: float = 0.0

    @property
    def audio_s(self) -> float:
        return self.n_samples / SAMPLE_RATE

    @property
    def n_threads(self) -> int:
        """The call's threads (all states together)."""
        return self.opts.n_threads

    @property
    def full_ctx(self) -> bool:
        """Whether the runs use the whole 1500-position encoder context (the engine gives
        them states that never ran a trimmed one: engine.StatePool)."""
        return self.run_opts.audio_ctx in (None, 0, N_AUDIO_CTX)

    @property
    def trim_ctx(self) -> bool:
        """The fast preset, no context asked for: each run's encoder context first trimmed to
        its audio, a clip's or a chunk's (full_run). A state may then run a full-length window
        after a trimmed one: vendor/patches/0015 zeroes the padding that made that unsafe."""
        return self.preset == "fast" and self.opts.audio_ctx is None

    @property
    def chunked(self) -> bool:
        return self.chunks is not None


def make_plan(opts: DecodeOptions, n_samples: int, *, multilingual: bool, preset: Optional[str] = None,
              speech: Optional[Sequence[Tuple[float, float]]] = None, vad_ms: float = 0.0) -> Plan:
    """The plan of one call: ``speech`` (VAD segments in seconds, engine.speech_segments)
    makes it the chunked long-form plan, None one pass. Language: as asked, "en" for an
    English-only model asked for none, else detected (multilingual models only)."""
    language = opts.language if opts.language is not None or multilingual else "en"
    detect = language is None
    common = dict(preset=preset or "accurate", opts=opts, n_samples=n_samples, language=language, detect=detect)
    if speech is None:
        return Plan(run_opts=opts, **common)
    chunks = tuple(plan_chunks(speech, n_samples))
    workers = max(1, min(len(chunks), opts.chunk_workers or opts.n_threads))
    per_worker = max(1, opts.n_threads // workers)
    run_opts = opts.replace(n_threads=per_worker, decode_threads=min(opts.decode_threads, per_worker),
                            speech_only=True)
    return Plan(run_opts=run_opts, chunks=chunks, workers=workers, vad_ms=vad_ms, **common)


# ---------------------------------------------------------------------- a clip's speech in its window
#: How much of a one-pass clip is decoded before its first and after its last loud sample,
#: whatever silence the clip had there (cut off, or made up with silence).
MARGIN_S = 0.5
#: Loud: above this, relative to the clip's peak (-50 dB: the copies of a clip in a WAV, a
#: 44.1 kHz resample, a FLAC, a 64 kbit/s MP3 or with silence added agree on its first
#: loud sample to two samples; the MP3's pre-echo moves it up to 7 ms earlier at -60 dB, 19 ms
#: at -80 dB).
LOUD_DB = -50.0


def around_speech(samples: np.ndarray, opts: DecodeOptions) -> Tuple[np.ndarray, Optional[TimeMap]]:
    """A clip of at most one window as it is decoded: MARGIN_S of it before its first loud
    sample and after its last, what lies beyond cut off, what is missing made up with
    silence; and the map of its times back to the clip (None: the clip as it is).

    Whisper reads speech by where it sits in the window, and by where the audio ends:
    shifted by 10 ms, tiny.en said other words for 14 of bench/corpus.py's 24 synthesised
    clips; with 2 s of silence before them, 4; recordings of people with 2 s of silence
    after them, 2 of 11. Left as they are: longer audio; runs that read the clip's own times
    (offset, duration, a prefix) or have an encoder context sized for it; and audio a VAD
    already cut with its own padding, decoded as a long file's chunk is (``speech_only``, a
    window start limit: the streaming transcriber's finals)."""
    if (samples.size > WINDOW_SECONDS * SAMPLE_RATE or not samples.size or opts.offset_ms or opts.duration_ms
            or opts.prefix or opts.audio_ctx not in (None, 0, N_AUDIO_CTX) or opts.speech_only
            or opts.window_start_limit_ms):
        return samples, None
    level = np.abs(samples)
    peak = float(level.max())
    if not peak > 0.0:
        return samples, None
    loud = level > peak * np.float32(10 ** (LOUD_DB / 20))
    del level
    first, end = int(np.argmax(loud)), samples.size - int(np.argmax(loud[::-1]))
    del loud
    margin = int(round(MARGIN_S * SAMPLE_RATE))
    a, b = first - margin, end + margin
    if (a == 0 and b == samples.size) or b - a > WINDOW_SECONDS * SAMPLE_RATE:
        return samples, None  # as it is, or made longer than a window: as it is
    lo, hi = max(0, a), min(b, samples.size)
    kept = samples[lo:hi]
    if a < 0 or b > samples.size:
        kept = np.concatenate([np.zeros(lo - a, np.float32), kept, np.zeros(b - hi, np.float32)])
    return kept, TimeMap([((lo - a) / SAMPLE_RATE, lo / SAMPLE_RATE)], [(hi - lo) / SAMPLE_RATE])


# ---------------------------------------------------------------------- features and language
class Features:
    """Log-mel features computed with numpy (features.py) instead of whisper.cpp's own FFT:
    same numbers, ~10x less CPU, once per native run. ``compute`` returns (None, 0, 0.0)
    where whisper.cpp must compute them itself."""

    #: Above this the numpy features (4 bytes x 80 x 100 per second, copied once more
    #: into the native state) are not worth their memory: whisper.cpp computes them.
    MAX_S = 1800.0

    def __init__(self, mel_filters) -> None:
        self._filters = mel_filters
        self._bank: Optional[features.MelBank] = None  # on first use

    def compute(self, samples: np.ndarray, opts: DecodeOptions, enabled: bool = True):
        """(mel, frames, ms) for State.full, or (None, 0, 0.0): disabled, or token timestamps
        and offset/duration (they read the samples natively), or audio out of range."""
        if (not enabled or opts.token_timestamps or opts.offset_ms or opts.duration_ms
                or samples.size <= features.N_FFT or samples.size > self.MAX_S * SAMPLE_RATE):
            return None, 0, 0.0
        t0 = time.perf_counter()
        if self._bank is None:
            self._bank = features.MelBank(self._filters)
        mel, frames = features.log_mel(samples, self._bank, pad_30s=False)
        return mel, frames, (time.perf_counter() - t0) * 1000


def detect_language(state, samples: np.ndarray, n_threads: int, mel: Optional[np.ndarray] = None):
    """(language, probabilities >= 1e-4, ms): detection on the first 30 s.

    From the run's one mel when there is one (its first window, as openai-whisper detects
    on the whole file's mel), so the features are computed once; otherwise whisper.cpp
    computes the mel of the first 30 s of ``samples``."""
    td = time.perf_counter()
    if mel is not None:
        probs = state.detect_language(n_threads=n_threads, mel=mel)
    else:
        probs = state.detect_language(samples[:int(WINDOW_SECONDS * SAMPLE_RATE)], n_threads)
    ms = (time.perf_counter() - td) * 1000
    return next(iter(probs)), {k: float(v) for k, v in probs.items() if v >= 1e-4}, ms


# ---------------------------------------------------------------------- raw records → results
def word_builder(opts: DecodeOptions, language: Optional[str], eot: int, alignment_heads, name: str):
    """What gives each segment its words: DTW times of the alignment heads
    (``word_timestamps``), whisper.cpp's token times (``token_timestamps``), or nothing."""
    if opts.word_timestamps:
        if alignment_heads is None:
            raise OptionError(f"word_timestamps needs the model's alignment heads, and {name} was loaded "
                              "with alignment_heads=None: load it with alignment_heads='auto' (or a preset)")
        return DtwWords(eot, language)
    if not opts.token_timestamps:
        return None
    return TokenTimeWords(eot, language in NO_SPACE_LANGUAGES)


def segments(raws, words_of=None, last_speech: float = 0.0) -> List[Segment]:
    """Segments of raw native ones; DTW words are made for all of a run's segments together
    (openai-whisper's heuristics look at a window's words and the speech before them)."""
    if isinstance(words_of, DtwWords):
        return [segment(raw, timed=timed) for raw, timed in zip(raws, words_of.build(raws, last_speech))]
    return [segment(raw, words_of) for raw in raws]


def segment(raw, words_of: "Optional[TokenTimeWords]" = None, timed=None) -> Segment:
    """A ``Segment`` of a native ``RawSegment``; ``timed``: (start, end, words) of DtwWords."""
    toks = raw.tokens
    tokens = [] if not toks else [
        Token(t.id, t.text.decode("utf-8", "replace"), t.p, t.logprob, round(t.t0, 3), round(t.t1, 3))
        for t in map(as_token, toks)]
    t0, t1 = raw.t0, raw.t1
    words = words_of.build(toks) if words_of is not None and toks else []
    if timed is not None:
        t0, t1, words = timed
    return Segment(round(t0, 3), round(t1, 3), raw.text, raw.no_speech_prob, raw.speaker_turn_next, tokens, words)


#: A trimmed run (Plan.trim_ctx) that times its text this far past the end of its audio read
#: the shortened context wrong; it is run again on the whole window (full_run).
PAST_END_S = 0.5


def full_run(state, audio: Optional[np.ndarray], opts: DecodeOptions, trim: bool, *, on_segment=None,
             on_progress=None, audio_s: Optional[float] = None, **kw) -> Tuple[dict, Dict[str, float]]:
    """``state.full`` of ``audio`` (``kw``: its features) → (raw result, native timings).
    With features, ``audio`` may be None and ``audio_s`` its length: the run reads only the
    features, and a mel in a one-element list is handed over (State.full frees it once
    whisper.cpp holds its copy), except where a trimmed run may need it a second time.

    ``trim`` (the fast preset): first on the encoder context cut to the audio
    (options.audio_ctx_for), which costs what the audio needs instead of a whole 30 s
    window. A cut context can mislead the model about time: on 70 short clips (the
    bench's 24 synthesised sentences, 11 recordings, each also with 2 s of silence around)
    tiny.en timed 13 past their end, some saying their sentence twice, WER 14.6 % against
    12.2 % on the whole window. So a trimmed run with a segment ending more than
    PAST_END_S after the audio, or saying again what the segment before it said
    (_fits_its_audio), is run again on the whole window: 13 of the 70 again, WER 11.9 %,
    in 62 % of the whole windows' time. Its segments reach ``on_segment`` once the run is
    kept; progress only rises."""
    if on_progress is not None:
        kw["on_progress"] = _rising(on_progress)
    if audio is None:
        audio = _NO_SAMPLES
    else:
        audio_s = audio.size / SAMPLE_RATE
    ctx = audio_ctx_for(audio_s)
    spent: list = []  # native timings of a trimmed run not kept
    if trim and ctx < N_AUDIO_CTX:
        if isinstance(kw.get("mel"), list):  # needed again if the trimmed run is not kept
            kw["mel"] = kw["mel"][0]
        held: list = []
        raw = state.full(audio, opts.replace(audio_ctx=ctx), on_segment=held.append if on_segment else None, **kw)
        if _fits_its_audio(raw["segments"], audio_s):
            for s in held:
                on_segment(s)
            return raw, dict(raw["timings"])
        spent.append(raw["timings"])
    raw = state.full(audio, opts, on_segment=on_segment, **kw)
    return raw, sum_timings(spent + [raw["timings"]])


_NO_SAMPLES = np.zeros(0, np.float32)


def _fits_its_audio(raws, audio_s: float) -> bool:
    """Whether a trimmed run's segments are what the whole window would give, as far as can
    be seen: none ends more than PAST_END_S after the audio, and no segment says again what
    the one before it said (base, on 1 s of speech with 2 s of silence on each side: "Ten of
    clubs" at 0-2 s and again at 2-4 s; once on the whole window)."""
    if any(s.t1 > audio_s + PAST_END_S for s in raws):
        return False
    words = [_WORDS.sub(" ", s.text.lower()).strip() for s in raws]
    return not any(a and a == b for a, b in zip(words, words[1:]))


_WORDS = re.compile(r"[^\w]+")


def _rising(on_progress):
    """``on_progress`` called only with values above the last one."""
    last = [-1]

    def f(percent):
        if percent > last[0]:
            last[0] = percent
            on_progress(percent)

    return f


def run_chunk(state, samples: np.ndarray, chunk: Chunk, opts: DecodeOptions, words_of, feats: Features,
              numpy_features: bool = True, on_segment=None, trim: bool = False):
    """One chunk on ``state``: its audio, features, one ``whisper_full`` (``trim``:
    Plan.trim_ctx, see full_run) and its segments in file time. Returns (segments, native
    timings)."""
    audio, to_original = chunk.audio(samples)
    # no window for the chunk's padding after its speech (vad/chunks.py: window_start_limit_ms)
    pad_s = vad_parameters(opts)["speech_pad_ms"] / 1000
    opts = opts.replace(window_start_limit_ms=chunk.window_start_limit_ms(pad_s))
    mel, mel_frames, mel_ms = feats.compute(audio, opts, numpy_features)
    if mel is not None:  # the run reads the features only: neither stays resident beside it
        audio_s, audio, mel = audio.size / SAMPLE_RATE, None, [mel]
    else:
        audio_s = None
    raw, native = full_run(state, audio, opts, trim, audio_s=audio_s, mel=mel, mel_frames=mel_frames,
                           on_segment=on_segment)
    native["mel_ms"] += mel_ms
    # Words are made in file time: a DTW time in the silence joined between two pieces of
    # speech goes to the piece after it for a start, before it for an end (remap_segment).
    return segments([remap_segment(s, to_original) for s in raw["segments"]], words_of, chunk.start), native


#: whisper.cpp's phases of one run, summed over a call's runs.
NATIVE_PHASES = ("mel_ms", "encode_ms", "decode_ms", "total_ms", "n_encode")


def sum_timings(runs: Sequence[Mapping[str, float]]) -> Dict[str, float]:
    """whisper.cpp's phases (``NATIVE_PHASES``) summed over runs."""
    t: Dict[str, float] = {k: 0 if k == "n_encode" else 0.0 for k in NATIVE_PHASES}
    for run in runs:
        for k in t:
            t[k] += run[k]
    return t


def timings(audio_s: float, native: Mapping[str, float], detect_ms: float, total_ms: float, n_threads: int,
            load_ms: float, **extra) -> Dict[str, float]:
    """A call's timings: ``native`` is whisper.cpp's phases (summed over chunks)."""
    return {
        "audio_seconds": audio_s,
        "load_ms": load_ms,
        "language_ms": detect_ms,
        "mel_ms": native["mel_ms"],
        "encode_ms": native["encode_ms"],
        "decode_ms": native["decode_ms"],
        "native_ms": native["total_ms"],
        "total_ms": total_ms,
        "n_encode": native["n_encode"],
        "n_threads": n_threads,
        **extra,  # the long-form path's vad_ms, chunks, workers
        "real_time_factor": total_ms / 1000 / audio_s,
    }
