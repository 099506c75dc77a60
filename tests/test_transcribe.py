"""Real inference on real weights: transcripts, segments, languages, presets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import whisperx_native as wn
from whisperx_native import pipeline
from _util import JFK_TEXT, JFK_WAV, normalize


def test_jfk_tiny_en_greedy(tiny):
    result = tiny.transcribe(JFK_WAV, preset="fast", audio_ctx=0)
    assert normalize(result.text) == normalize(JFK_TEXT)
    assert result.language == "en"


def test_jfk_tiny_en_default_accurate(tiny):
    result = tiny.transcribe(str(JFK_WAV))
    assert normalize(result.text) == normalize(JFK_TEXT)


def test_fast_preset_cuts_a_clips_context_and_stays_right(tiny, jfk_samples):
    result = tiny.transcribe(jfk_samples, preset="fast")
    assert normalize(result.text) == normalize(JFK_TEXT)
    assert result.timings["n_encode"] == 1  # nothing past the audio: not decoded again (pipeline.full_run)


@pytest.fixture(scope="module")
def six_second_clips():
    speech = wn.load_audio(Path(__file__).parent / "data" / "long_speech.ogg")
    return [speech[s * wn.SAMPLE_RATE:(s + 6) * wn.SAMPLE_RATE] for s in range(0, 60, 6)]


@pytest.mark.parametrize("preset", [None, "fast"])
def test_short_clips_are_timed_inside_their_audio_and_said_once(tiny, six_second_clips, preset):
    """The fast preset cuts a clip's encoder context to its audio (10.24 s here). Kept as it
    was, that made tiny.en time six of these ten 6 s clips past their end (0 - 7.0 s) and say
    one three times over ("And so my fellow Americans asked, and so ..."). Such a run is now
    decoded again on the whole window (pipeline.full_run); the others keep the cut context."""
    encodes = []
    for clip in six_second_clips:
        result = tiny.transcribe(clip, preset=preset, language="en")
        duration = clip.size / wn.SAMPLE_RATE
        assert all(s.end <= duration + 0.5 for s in result.segments), result.segments
        words = normalize(result.text).split()
        fours = [tuple(words[i:i + 4]) for i in range(len(words) - 3)]
        assert len(fours) == len(set(fours)), result.text
        encodes.append(result.timings["n_encode"])
    # a clip cut in mid-word is decoded with 0.5 s of silence after it (pipeline.around_speech):
    # words after a last timestamp 1 s before that end get a window of their own
    assert set(encodes) == {1, 2} if preset == "fast" else set(encodes) <= {1, 2}, encodes


def test_a_cut_context_that_repeats_itself_is_decoded_again(base, six_second_clips, monkeypatch):
    """base, fast preset, 2 s of speech with 2 s of silence on each side: on the cut context it
    said "The morning train to" 24 times, each a segment inside the audio (0-4 s); the whole
    window says it once (pipeline.full_run). A clip is now decoded with 0.5 s of its silence
    (pipeline.around_speech), which its cut context reads right: the check of full_run is shown
    with the clip decoded as it is, as a chunk's or an offset run's audio is."""
    silence = np.zeros(2 * wn.SAMPLE_RATE, np.float32)
    clip = np.concatenate([silence, six_second_clips[0][: 2 * wn.SAMPLE_RATE], silence])
    for as_it_is in (True, False):
        with monkeypatch.context() as m:
            if as_it_is:
                m.setattr(pipeline, "around_speech", lambda samples, opts: (samples, None))
            result = base.transcribe(clip, preset="fast", language="en")
        texts = [normalize(s.text) for s in result.segments]
        assert texts and all(a != b for a, b in zip(texts, texts[1:])), texts
        assert normalize(result.text).count("morning train") == 1, result.text
        if as_it_is:
            assert result.timings["n_encode"] >= 2  # the cut context's run, then the whole window's


def test_segments_ordered_and_inside_the_audio(tiny, jfk_samples):
    result = tiny.transcribe(jfk_samples, token_timestamps=True, max_segment_length=40, split_on_word=True)
    duration = jfk_samples.size / wn.SAMPLE_RATE
    assert len(result.segments) >= 2
    prev_end = 0.0
    for seg in result.segments:
        assert 0.0 <= seg.start <= seg.end <= duration + 0.5, seg
        assert seg.start >= prev_end - 0.01, (prev_end, seg)
        prev_end = seg.end
        assert seg.text.strip()
        assert 0.0 <= seg.no_speech_prob <= 1.0
        assert seg.tokens and all(0.0 <= t.p <= 1.0 for t in seg.tokens)
        assert all(t.start <= t.end for t in seg.tokens)
    assert normalize(result.text) == normalize(JFK_TEXT)


def test_result_serializes(tiny, jfk_samples):
    import json

    result = tiny.transcribe(jfk_samples, preset="fast")
    d = json.loads(result.to_json())
    assert normalize(d["text"]) == normalize(JFK_TEXT)
    assert d["segments"][0]["start"] == result.segments[0].start


def test_timings_reported(tiny, jfk_samples):
    t = tiny.transcribe(jfk_samples, preset="fast").timings
    assert t["audio_seconds"] == pytest.approx(11.0, abs=0.1)
    for key in ("load_ms", "mel_ms", "encode_ms", "decode_ms", "total_ms"):
        assert t[key] > 0, key
    assert t["n_encode"] >= 1
    assert t["encode_ms"] + t["decode_ms"] <= t["total_ms"] + 1
    assert t["real_time_factor"] == pytest.approx(t["total_ms"] / 1000 / t["audio_seconds"])


@pytest.mark.parametrize("convert", [
    lambda a: (np.clip(a, -1, 1) * 32767).astype(np.int16),
    lambda a: a.astype(np.float64),
    lambda a: np.repeat(a, 2)[::2],          # non-contiguous float32 view
], ids=["int16", "float64", "strided"])
def test_array_conversions_give_the_same_text(tiny, jfk_samples, convert):
    result = tiny.transcribe(convert(jfk_samples), preset="fast")
    assert normalize(result.text) == normalize(JFK_TEXT)


def test_contiguous_float32_is_not_copied(jfk_samples):
    assert wn.as_samples(jfk_samples) is jfk_samples


def test_too_short_input_is_an_empty_result(tiny, caplog):
    result = tiny.transcribe(np.zeros(800, dtype=np.float32))
    assert result.segments == [] and result.text == ""
    assert "shorter than" in caplog.text


def test_english_only_model_rejects_other_languages(tiny, jfk_samples):
    with pytest.raises(ValueError, match="English-only"):
        tiny.transcribe(jfk_samples, language="de")
    with pytest.raises(ValueError, match="English-only"):
        tiny.transcribe(jfk_samples, translate=True)


def test_unknown_options_and_presets_are_errors(tiny, jfk_samples):
    with pytest.raises(TypeError, match="beamsize"):
        tiny.transcribe(jfk_samples, beamsize=3)
    with pytest.raises(ValueError, match="preset"):
        tiny.transcribe(jfk_samples, preset="turbo")
    with pytest.raises(ValueError, match="beam_size"):
        tiny.transcribe(jfk_samples, beam_size=9)
    with pytest.raises(ValueError, match="language"):
        tiny.transcribe(jfk_samples, language="xx")


def test_initial_prompt_steers_spelling(tiny, jfk_samples):
    result = tiny.transcribe(jfk_samples, preset="fast", initial_prompt="And so, my fellow Americans:")
    assert "american" in result.text.lower()


def test_model_facts(tiny):
    hp = tiny.hparams()
    assert hp["n_audio_layer"] == 4 and hp["n_text_layer"] == 4 and hp["n_vocab"] == 51864
    assert tiny.model_type == "tiny"
    assert tiny.multilingual is False


def test_base_detects_english_with_probabilities(base, jfk_samples):
    result = base.transcribe(jfk_samples, preset="fast", audio_ctx=0)
    assert result.language == "en"
    assert next(iter(result.language_probs)) == "en"
    assert result.language_probs["en"] > 0.5
    assert sum(result.language_probs.values()) <= 1.0 + 1e-3
    assert normalize(result.text) == normalize(JFK_TEXT)
    assert base.multilingual is True


def test_base_translate_and_forced_language_run(base, jfk_samples):
    result = base.transcribe(jfk_samples, preset="fast", language="en", translate=True)
    assert "country" in result.text.lower()
    assert result.language_probs is None


def test_vad_skips_silence_and_keeps_the_timeline(tiny, jfk_samples):
    silence = np.zeros(wn.SAMPLE_RATE * 5, dtype=np.float32)
    padded = np.concatenate([silence, jfk_samples, silence])
    result = tiny.transcribe(padded, preset="fast", vad=True, token_timestamps=True)
    assert normalize(result.text) == normalize(JFK_TEXT)
    # times refer to the original audio, leading silence included
    assert 4.5 <= result.segments[0].start <= 6.0
    assert result.segments[-1].end <= 5.0 + jfk_samples.size / wn.SAMPLE_RATE + 0.5
    assert all(4.5 <= t.start for s in result.segments for t in s.tokens if t.text.strip() and t.id < 50256)
    assert tiny.transcribe(np.concatenate([silence, silence]), preset="fast", vad=True).text == ""


def test_vad_model_is_checked_before_whisper_cpp_sees_it(tiny, jfk_samples, tmp_path):
    bad = tmp_path / "vad.bin"
    bad.write_bytes(b"\0" * 1000)
    with pytest.raises(wn.ModelError):
        tiny.transcribe(jfk_samples, vad=True, vad_model=str(bad))


def test_language_is_detected_on_the_one_mel(base_ggml, jfk_samples, monkeypatch) -> None:
    """Detection reads the first window of the call's own mel (features computed once),
    with what whisper.cpp's mel of the samples gives (issue 17)."""
    from whisperx_native import _native, pipeline

    model = wn.Model(base_ggml, n_threads=2)
    mel, _frames, _ms = model._features.compute(jfk_samples, wn.DecodeOptions(), True)
    with _native.Context(str(base_ggml)) as ctx, ctx.new_state() as st:
        from_samples = st.detect_language(jfk_samples, 2)
        from_mel = st.detect_language(n_threads=2, mel=mel)
        with pytest.raises(wn.OptionError):
            st.detect_language(jfk_samples, 2, mel=mel)
    assert next(iter(from_mel)) == next(iter(from_samples)) == "en"
    assert abs(from_mel["en"] - from_samples["en"]) < 0.02
    seen = []
    real = pipeline.detect_language
    monkeypatch.setattr(pipeline, "detect_language",
                        lambda st, s, n, mel=None: seen.append(mel is not None) or real(st, s, n, mel))
    result = model.transcribe(jfk_samples)
    assert result.language == "en" and seen == [True]
