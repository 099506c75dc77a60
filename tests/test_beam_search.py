"""The default decoder (vendor/patches/0006): deterministic beam search on known logits and
on real speech, and results that do not depend on the thread count (patch 0005)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

import whisperx_native as wn
from whisperx_native import _native, pipeline
from whisperx_native.options import DecodeOptions
from _util import JFK_WAV, normalize

# Arbitrary text tokens of the English vocabulary: what they spell does not matter here.
A, B, C, D, E, F = 1000, 2000, 3000, 4000, 5000, 6000


def _scripted(tree, eot):
    """A logits filter that makes the model a fixed language model: ``tree`` maps the
    tokens decoded so far to {next token: probability}; every other token is impossible."""
    calls = []

    def f(tokens, logits):
        nxt = tree[tuple(t for t in tokens)]
        arr = np.asarray(logits)
        arr[:] = -np.inf
        for tok, p in nxt.items():
            arr[eot if tok == "eot" else tok] = math.log(p)
        calls.append(tuple(tokens))

    return f, calls


def _run(state, tree, eot, **opts):
    f, calls = _scripted(tree, eot)
    o = DecodeOptions(language="en", n_threads=1, timestamps=False, temperature_increment=0.0, **opts)
    quiet = np.random.default_rng(0).normal(0, 1e-3, 2 * wn.SAMPLE_RATE).astype(np.float32)
    raw = state.full(quiet, o, logits_filter=f)
    ids = [t[0] for seg in raw["segments"] for t in seg[5] if t[0] < eot]
    return ids, calls


@pytest.fixture(scope="module")
def scripted_state(tiny_en_ggml):
    ctx = _native.Context(str(tiny_en_ggml))
    st = ctx.new_state()
    yield st, 50256  # tiny.en's end of text
    st.close()
    ctx.close()


def test_beam_search_finds_the_likelier_sequence_greedy_misses(scripted_state) -> None:
    st, eot = scripted_state
    tree = {
        (): {A: 0.6, B: 0.4},
        (A,): {C: 0.34, D: 0.33, E: 0.33},     # greedy: A C, log p = -1.59
        (B,): {F: 0.95, C: 0.05},              # beam:   B F, log p = -0.97
        (A, C): {"eot": 1.0}, (A, D): {"eot": 1.0}, (A, E): {"eot": 1.0},
        (B, F): {"eot": 1.0}, (B, C): {"eot": 1.0},
    }
    assert _run(st, tree, eot, beam_size=1, best_of=1)[0] == [A, C]
    for beam in (2, 5):
        ids, calls = _run(st, tree, eot, beam_size=beam, best_of=beam)
        assert ids == [B, F], beam
        # step 0 is expanded once (the beams start as copies of one prefix), then each live beam
        assert calls.count(()) == 1
        assert (A,) in calls and (B,) in calls


def test_ties_are_broken_by_token_id_every_time(scripted_state) -> None:
    st, eot = scripted_state
    tree = {(): {B: 0.5, A: 0.5}, (A,): {"eot": 1.0}, (B,): {"eot": 1.0}}
    results = {tuple(_run(st, tree, eot, beam_size=5, best_of=5)[0]) for _ in range(5)}
    assert results == {(A,)}


def test_search_ends_when_beam_size_x_patience_hypotheses_finished(scripted_state) -> None:
    """openai-whisper's rule: a hypothesis that ends the text leaves the beam, which is
    refilled from the other candidates (beam_size + 1 per beam), and the search stops once
    beam_size x patience hypotheses have finished. With patience 1 the two short ones
    finish first; with patience 2 the likelier long path through B is found."""
    st, eot = scripted_state
    tree = {
        (): {A: 0.55, B: 0.45},
        (A,): {"eot": 0.5, C: 0.25, D: 0.25},     # A eot: -1.29 over 2 tokens
        (B,): {E: 0.99, F: 0.01},
        (A, C): {"eot": 1.0}, (A, D): {"eot": 1.0},
        (B, E): {F: 0.99, C: 0.01},               # B E F eot: -0.82 over 4 tokens
        (B, F): {"eot": 1.0},
        (B, E, F): {"eot": 1.0}, (B, E, C): {"eot": 1.0},
    }
    assert _run(st, tree, eot, beam_size=2, best_of=2)[0] == [A]
    assert _run(st, tree, eot, beam_size=2, best_of=2, patience=2.0)[0] == [B, E, F]


def _variants(samples: np.ndarray, tmp_path):
    """The same speech as a decoder sees it after other containers and rates."""
    out = {"16k": samples}
    stereo = soxr.resample(samples, wn.SAMPLE_RATE, 44100)
    p = tmp_path / "stereo44.wav"
    sf.write(p, np.stack([stereo, stereo], axis=1), 44100, subtype="PCM_16")
    out["44.1k stereo wav"] = wn.load_audio(p)
    p = tmp_path / "speech.flac"
    sf.write(p, samples, wn.SAMPLE_RATE)
    out["flac"] = wn.load_audio(p)
    p = tmp_path / "float.wav"
    sf.write(p, samples, wn.SAMPLE_RATE, subtype="FLOAT")
    out["float wav"] = wn.load_audio(p)
    pad = np.zeros(2 * wn.SAMPLE_RATE, dtype=np.float32)
    out["padded"] = np.concatenate([pad, samples, pad])
    return out


def test_default_decoding_gives_the_same_words_for_every_copy(tiny, jfk_samples, tmp_path) -> None:
    texts = {name: normalize(tiny.transcribe(x, language="en", n_threads=1).text)
             for name, x in _variants(jfk_samples, tmp_path).items()}
    assert len(set(texts.values())) == 1, texts


@pytest.mark.parametrize("phrase", [0, 3])
def test_silence_around_a_clip_changes_neither_its_words_nor_their_times(tiny, varied_speech, phrase) -> None:
    """A sentence of tests/data/long_speech (inside varied_speech's 50 s) with more or less
    silence around it, some of it not a whole number of mel frames: the same words and the
    same times in the clip (pipeline.around_speech)."""
    import json

    p = json.loads((Path(__file__).parent / "data" / "long_speech.json").read_text())["phrases"][phrase]
    sr = wn.SAMPLE_RATE
    clip = varied_speech[int((p["start"] - 0.1) * sr):int((p["end"] + 0.1) * sr)]

    def run(before_s, after_s):
        x = np.concatenate([np.zeros(int(before_s * sr), np.float32), clip,
                            np.zeros(int(after_s * sr), np.float32)])
        r = tiny.transcribe(x, language="en", n_threads=2)
        # in the clip's time; a time in the silence added before or after it is the clip's edge
        in_clip = lambda t: min(max(0.0, t - int(before_s * sr) / sr), clip.size / sr)  # noqa: E731
        return r.text, [(in_clip(s.start), in_clip(s.end)) for s in r.segments]

    text, times = run(0, 0)
    assert normalize(text).split()[:3] == normalize(p["text"]).split()[:3]  # the sentence, heard
    for before_s, after_s in ((2.0, 2.0), (0.7371, 0.0), (0.0, 1.3), (3.01, 0.42)):
        t, ts = run(before_s, after_s)
        assert t == text, (before_s, after_s)
        assert np.allclose(ts, times, atol=0.0015), (before_s, after_s, ts, times)


@pytest.fixture(scope="module")
def varied_speech() -> np.ndarray:
    """50 s of different sentences (tests/data): two chunks, several windows."""
    return wn.load_audio(Path(__file__).parent / "data" / "long_speech.ogg")[: 50 * wn.SAMPLE_RATE]


@pytest.mark.parametrize("preset", [None, "fast"])
@pytest.mark.parametrize("vad", [None, False])
def test_results_do_not_depend_on_the_thread_count(tiny, varied_speech, preset, vad) -> None:
    """Same text, token probabilities and timestamps on 1 and 2 threads (flash attention
    on: patch 0005), for the chunked long-form path and for one pass. More threads than
    cores are clamped, so 2 is the most this machine can show; the patch was checked with
    3 and 4 threads on the same audio."""
    def run(n):
        r = tiny.transcribe(varied_speech, preset=preset, language="en", n_threads=n, vad=vad)
        return r.text, [(s.start, s.end, [(t.id, t.p, t.start, t.end) for t in s.tokens]) for s in r.segments]

    one, two = run(1), run(2)
    assert one[0] == two[0]
    assert one == two


def _looping(token):
    """A logits filter that makes the model say ``token`` forever; counts its steps."""
    steps = []

    def f(tokens, logits):
        arr = np.asarray(logits)
        arr[:] = -np.inf
        arr[token] = 0.0
        steps.append(len(tokens))

    return f, steps


@pytest.mark.parametrize("beam_size", [1, 5])
@pytest.mark.parametrize("seconds", [1, 4])
def test_a_loop_stops_at_the_token_limit_of_its_window(scripted_state, beam_size, seconds) -> None:
    """vendor/patches/0026: a window samples at most max_tokens_per_second x (its audio + 1 s)
    tokens; without the limit a loop runs to whisper.cpp's n_text_ctx/2 - 4 = 220."""
    st, _ = scripted_state
    audio = np.random.default_rng(0).normal(0, 1e-3, seconds * wn.SAMPLE_RATE).astype(np.float32)
    lengths = {}
    for rate in (0.0, 20.0, 7.5):
        f, steps = _looping(A)
        o = DecodeOptions(language="en", n_threads=1, timestamps=False, temperature_increment=0.0,
                          beam_size=beam_size, best_of=beam_size, max_tokens_per_second=rate)
        st.full(audio, o, logits_filter=f)
        lengths[rate] = max(steps) + 1
    assert lengths == {0.0: 220, 20.0: 20 * (seconds + 1), 7.5: math.ceil(7.5 * (seconds + 1))}


def test_a_damaged_model_stops_at_the_token_limit(tiny_en_ggml, jfk_samples, tmp_path) -> None:
    """One weight of the token embedding set to 36.4 (the fuzz campaign's model-20459) makes
    tiny.en say "lip" over and over. On a 1 s clip (decoded as 1.94 s: pipeline.around_speech)
    the loop ends at 20 tokens a second of it and one more second's (59), not 220."""
    from whisperx_native.models.ggml_file import validate

    emb = next(t for t in validate(tiny_en_ggml).tensors if t.name == "decoder.token_embedding.weight")
    assert emb.type.name == "f16"
    damaged = tmp_path / "damaged.bin"
    data = bytearray(Path(tiny_en_ggml).read_bytes())
    at = emb.offset + 2 * (10645 * emb.ne[0] + 75)
    data[at:at + 2] = np.float16(36.4).tobytes()
    damaged.write_bytes(bytes(data))
    clip = jfk_samples[: wn.SAMPLE_RATE]
    with wn.Model(damaged, n_threads=1, adapt_threads=False) as m:
        def n_tokens(**opts):
            r = m.transcribe(clip, preset="fast", language="en", **opts)
            return r.text, sum(len(s.tokens) for s in r.segments)

        loop, n_loop = n_tokens(max_tokens_per_second=0)
        capped, n_capped = n_tokens()
    assert loop.split()[:5] == ["lip"] * 5 and n_loop > 200
    decoded_s = pipeline.around_speech(clip, DecodeOptions())[0].size / wn.SAMPLE_RATE
    assert 1.5 < decoded_s < 2.0
    assert capped.split()[:5] == ["lip"] * 5 and n_capped <= math.ceil(20 * (decoded_s + 1))


def test_the_token_limit_leaves_speech_alone(tiny, jfk_samples) -> None:
    """jfk.wav is about 2.5 tokens a second: the same tokens and times with and without the
    limit, greedy and beam search, for the whole clip and for its first 2 s."""
    for clip in (jfk_samples, jfk_samples[: 2 * wn.SAMPLE_RATE]):
        for preset in (None, "fast"):
            runs = [tiny.transcribe(clip, preset=preset, language="en", n_threads=1, max_tokens_per_second=r)
                    for r in (0.0, 20.0)]
            a, b = ([(s.start, s.end, [(t.id, t.p) for t in s.tokens]) for s in r.segments] for r in runs)
            assert a == b and runs[0].text
