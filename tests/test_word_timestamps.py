"""Word timestamps (issue 13): DTW on the alignment heads, words as openai-whisper makes
them, snapped to pauses; the long-form path; subtitles of word times; alignment heads."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import srt
import webvtt

import whisperx_native as wn
from whisperx_native import _native
from whisperx_native.models import registry
from whisperx_native.options import DecodeOptions
from whisperx_native.output import render
from whisperx_native.words import DtwWords, RawToken, finish, pauses, snap_to_pauses
from _util import JFK_TEXT, JFK_WAV, normalize

EOT = 50256

#: jfk.wav, measured by hand from the waveform: RMS of 10 ms frames (numpy), speech where a
#: frame is 15 dB above the file's noise floor (the 10th percentile of the frames, -41.6 dB),
#: runs less than 80 ms apart joined. The runs start / end at these words (seconds):
JFK_ONSETS = {"and": 0.33, "ask": 3.29, "not": 4.03, "what": 5.42, "ask#2": 8.19}
JFK_OFFSETS = {"americans": 2.11, "not": 4.29, "you": 7.50}
TOLERANCE_S = 0.15


def _tok(tid, text, start, end, p=0.5):
    return RawToken(tid, text.encode() if isinstance(text, str) else text, p, np.log(p), -0.01, -0.01, start, end)


def _special(tid=EOT + 1):
    return RawToken(tid, b"[_BEG_]", 1.0, 0.0, -0.01, -0.01, None, None)


def _words_of(result):
    return [w for s in result.segments for w in s.words]


def _check_promises(result, audio_s):
    words = _words_of(result)
    assert words
    for w in words:
        assert 0 <= w.start <= w.end <= audio_s, w
    for a, b in zip(words, words[1:]):
        assert a.end <= b.start, (a, b)
    for seg in result.segments:
        if seg.words:
            assert (seg.start, seg.end) == (seg.words[0].start, seg.words[-1].end)


def _named(words):
    """{word (or word#2 for its second time): word} for jfk's words, case and punctuation aside."""
    out = {}
    for w in words:
        key = w.text.strip(".,").lower()
        out[key if key not in out else f"{key}#2"] = w
    return out


# ----------------------------------------------------------------------------- words from tokens
def test_tokens_become_words_as_openai_whisper_makes_them():
    # " Hello wor|ld, "|Yes." with contiguous DTW times (each token ends where the next starts)
    toks = [_special(), _tok(1, " Hello", 0.5, 0.9, 0.9), _tok(2, " wor", 0.9, 1.1, 0.6), _tok(3, "ld", 1.1, 1.3, 0.8),
            _tok(4, ",", 1.3, 1.4, 0.7), _tok(5, ' "', 1.4, 1.5, 0.5), _tok(6, "Yes", 1.5, 1.9, 0.4),
            _tok(7, ".", 1.9, 2.0, 0.9), RawToken(EOT + 300, b"[_TT_100]", 1.0, 0.0, -0.01, -0.01, None, None)]
    raw = (0.0, 2.0, ' Hello world, "Yes.', 0.0, False, toks)
    (start, end, words), = DtwWords(EOT, "en").build([raw])
    assert [w.text for w in words] == ["Hello", "world,", '"Yes.']
    # a closing mark joins the word before and keeps its times; a piece without a space joins
    # the word before it (the opening quote takes "Yes")
    assert [(w.start, w.end) for w in words] == [(0.5, 0.9), (0.9, 1.3), (1.4, 1.9)]
    assert words[1].probability == pytest.approx(0.7)  # mean of "wor" and "ld"
    assert (start, end) == (0.5, 1.9)  # the segment spans its words
    # an opening mark that is a word of its own joins the word after it
    toks = [_tok(1, " Hi", 0.0, 0.3), _tok(2, " (", 0.3, 0.4), _tok(3, " yes", 0.4, 0.8), _tok(4, ")", 0.8, 0.9)]
    (_s, _e, words), = DtwWords(EOT, "en").build([(0.0, 1.0, " Hi ( yes)", 0.0, False, toks)])
    assert [(w.text, w.start, w.end) for w in words] == [("Hi", 0.0, 0.3), ("( yes)", 0.4, 0.8)]


def test_characters_split_over_tokens_and_languages_without_spaces():
    nichi = "日".encode()
    toks = [_tok(1, nichi[:2], 0.0, 0.1), _tok(2, nichi[2:], 0.1, 0.2), _tok(3, "本", 0.2, 0.4), _tok(4, "。", 0.4, 0.5)]
    (_s, _e, words), = DtwWords(EOT, "ja").build([(0.0, 1.0, "日本。", 0.0, False, toks)])
    assert [(w.text, w.start, w.end) for w in words] == [("日", 0.0, 0.2), ("本。", 0.2, 0.4)]
    e_acute = "é".encode()
    toks = [_tok(1, " caf", 0.0, 0.2), _tok(2, e_acute[:1], 0.2, 0.3), _tok(3, e_acute[1:], 0.3, 0.4)]
    (_s, _e, words), = DtwWords(EOT, "fr").build([(0.0, 1.0, " café", 0.0, False, toks)])
    assert [(w.text, w.start, w.end) for w in words] == [("café", 0.0, 0.4)]


def test_long_words_at_sentence_boundaries_are_cut():
    # "one two. three": the "." stretches over a pause, and "three" back over it
    toks = [_tok(1, " one", 0.0, 0.3), _tok(2, " two", 0.3, 0.6), _tok(3, ".", 0.6, 2.6), _tok(4, " three", 2.6, 5.0),
            _tok(5, " four", 5.0, 5.3)]
    (_s, _e, words), = DtwWords(EOT, "en").build([(0.0, 6.0, " one two. three four", 0.0, False, toks)])
    assert [w.text for w in words] == ["one", "two.", "three", "four"]
    median = 0.3
    assert words[1].end == pytest.approx(0.6)  # "two." ends where "." starts: the mark's stretch is gone
    assert words[2].start == pytest.approx(5.0 - 2 * median)  # twice the median before its end


def test_words_without_dtw_times_fall_back_to_the_segment():
    toks = [_tok(1, " a", None, None), _tok(2, " b", None, None)]
    (_s, _e, words), = DtwWords(EOT, "en").build([(1.0, 2.0, " a b", 0.0, False, toks)])
    assert all(1.0 <= w.start <= w.end <= 2.0 for w in words)


def test_finish_orders_bounds_and_spans():
    W, S = wn.Word, wn.Segment
    segs = [S(0.0, 3.0, " a b c", words=[W(-0.2, 0.5, "a", 1.0), W(0.4, 1.0, "b", 1.0), W(0.2, 0.3, "c", 1.0)]),
            S(3.0, 9.0, " d", words=[W(2.5, 12.0, "d", 1.0)]), S(9.0, 9.5, " ", words=[])]
    out = finish(segs, audio_s=10.0)
    words = [w for s in out for w in s.words]
    assert [(w.start, w.end) for w in words] == [(0.0, 0.4), (0.4, 1.0), (1.0, 1.0), (2.5, 10.0)]
    assert (out[1].start, out[1].end) == (2.5, 10.0) and (out[2].start, out[2].end) == (9.0, 9.5)


def _tones(spans, total_s, noise_db=-90.0, seed=0):
    """A 200 Hz tone (-12 dBFS) over ``spans`` (seconds), noise at ``noise_db`` elsewhere."""
    sr = 16000
    t = np.arange(int(total_s * sr)) / sr
    x = np.random.default_rng(seed).normal(0, 10 ** (noise_db / 20), t.size).astype(np.float32)
    for a, b in spans:
        i, j = int(a * sr), int(b * sr)
        x[i:j] += 0.35 * np.sin(2 * np.pi * 200 * t[i:j]).astype(np.float32)
    return x


def test_pauses_follow_the_noise_floor():
    x = _tones([(0.5, 1.2), (1.6, 2.4), (4.0, 4.5)], 5.0)
    assert [(round(a, 2), round(b, 2)) for a, b in pauses(x)] == [(0.0, 0.5), (1.2, 1.6), (2.4, 4.0), (4.5, 5.0)]
    # background noise 30 dB under the speech in the second half: still a pause
    noisy = x + np.where(np.arange(x.size) > 2.2 * 16000, _tones([], 5.0, -42.0, 1), 0).astype(np.float32)
    assert [(round(a, 2), round(b, 2)) for a, b in pauses(noisy)] == [(0.0, 0.5), (1.2, 1.6), (2.4, 4.0), (4.5, 5.0)]


def test_a_long_silence_is_one_pause():
    x = _tones([(0.5, 1.5), (30.0, 31.0)], 32.0)  # digital silence far from any speech is still silence
    assert [(round(a, 2), round(b, 2)) for a, b in pauses(x)] == [(0.0, 0.5), (1.5, 30.0), (31.0, 32.0)]


def test_word_boundaries_snap_to_pauses():
    x = _tones([(0.5, 1.2), (1.6, 2.4), (4.0, 4.5)], 5.0)
    spans = [[0.2, 0.8], [0.8, 1.3], [1.3, 2.0], [2.0, 3.1], [3.1, 4.6]]  # DTW-like: words span the pauses
    snap_to_pauses(spans, x)
    assert spans == [[0.5, 0.8], [0.8, 1.2], [1.6, 2.0], [2.0, 2.4], [4.0, 4.5]]
    # the last words squeezed by DTW into a few frames (the end of text took the rest of the
    # sound): the last one reaches a typical word's length for its pause, no more
    squeezed = [[0.5, 0.75], [0.75, 1.0], [1.6, 1.9], [1.9, 2.0], [2.0, 2.0]]
    snap_to_pauses(squeezed, x)
    assert squeezed[-1] == [2.0, 2.4] and squeezed[-2] == [1.9, 2.0]
    far = [[0.5, 0.75], [0.75, 1.2], [1.6, 1.7], [1.7, 1.75]]  # 0.45 s past a typical end: not its edge
    snap_to_pauses(far, _tones([(0.5, 1.2), (1.6, 2.4)], 3.0))
    assert far[-1] == [1.7, 1.75]


# ----------------------------------------------------------------------------- alignment heads
def test_every_registry_model_has_its_preset():
    for arch in registry.ARCHS:
        spec = registry.get(arch)
        assert spec.alignment_heads == arch and arch in _native._core.ALIGNMENT_HEADS
        assert registry.alignment_heads_for(spec.hparams) == (arch, True)
        assert registry.get(f"{arch}-q8_0").alignment_heads == arch
    large = dataclasses.replace(registry.ARCHS["large-v3"], n_mels=80)  # large-v1 or -v2: cannot tell
    assert registry.alignment_heads_for(large) == (("top", 16), False)
    distil = dataclasses.replace(registry.ARCHS["large-v3"], n_text_layer=2)
    assert registry.alignment_heads_for(distil) == (("top", 1), False)


def test_a_file_gets_the_heads_of_its_shape(tiny):
    assert tiny.alignment_heads == "tiny.en"


def test_word_timestamps_without_alignment_heads_is_a_clear_error(tiny_en_ggml, jfk_samples):
    with wn.Model(tiny_en_ggml, alignment_heads=None) as m:
        assert m.alignment_heads is None
        with pytest.raises(wn.OptionError, match="alignment heads") as exc:
            m.transcribe(jfk_samples, word_timestamps=True, preset="fast")
        assert isinstance(exc.value, wn.WhisperError)
        assert m.transcribe(jfk_samples, preset="fast").text  # without word times it works
    with _native.Context(str(tiny_en_ggml)) as ctx, ctx.new_state() as st:  # the native layer says so too
        with pytest.raises(wn.OptionError, match="alignment heads"):
            st.full(jfk_samples, DecodeOptions(language="en", beam_size=1, n_threads=1, word_timestamps=True))
    for bad in ("large-v3", ("top", 99), [(7, 0)], "no-such-model"):
        with pytest.raises(wn.WhisperError):
            wn.Model(tiny_en_ggml, alignment_heads=bad)


# ----------------------------------------------------------------------------- real inference
@pytest.fixture(scope="module")
def jfk_words(tiny, jfk_samples):
    return {preset: tiny.transcribe(jfk_samples, preset=preset, word_timestamps=True) for preset in ("accurate", "fast")}


@pytest.mark.parametrize("preset", ["accurate", "fast"])  # beam search 5, greedy
def test_jfk_words_land_on_the_speech(jfk_words, jfk_samples, preset):
    result = jfk_words[preset]
    _check_promises(result, jfk_samples.size / wn.SAMPLE_RATE)
    words = _words_of(result)
    assert normalize(" ".join(w.text for w in words)) == normalize(JFK_TEXT)
    named = _named(words)
    for name, t in JFK_ONSETS.items():
        assert abs(named[name].start - t) <= TOLERANCE_S, (name, named[name], t)
    for name, t in JFK_OFFSETS.items():
        assert abs(named[name].end - t) <= TOLERANCE_S, (name, named[name], t)
    assert all(0 < w.probability <= 1 for w in words)


def test_greedy_and_beam_search_agree(jfk_words):
    beam, greedy = (_named(_words_of(jfk_words[p])) for p in ("accurate", "fast"))
    assert beam.keys() == greedy.keys()
    for name in JFK_ONSETS:  # where the speech says where a word starts (after a pause)
        assert abs(beam[name].start - greedy[name].start) <= TOLERANCE_S, name
    for name in JFK_OFFSETS:
        assert abs(beam[name].end - greedy[name].end) <= TOLERANCE_S, name


def test_same_times_on_one_and_two_threads(tiny, jfk_samples):
    one, two = (tiny.transcribe(jfk_samples, preset="fast", word_timestamps=True, n_threads=n) for n in (1, 2))
    assert _words_of(one) == _words_of(two)


def test_faster_whisper_keyword_and_json(tiny):
    result = tiny.transcribe(str(JFK_WAV), preset="fast", word_timestamps=True)  # faster-whisper's name
    d = json.loads(render(result, "json"))
    words = [w for s in d["segments"] for w in s["words"]]
    assert words and set(words[0]) == {"start", "end", "text", "probability"}
    assert _words_of(result)[0].word == _words_of(result)[0].text


def _espeak(text: str, out: Path) -> np.ndarray:
    """``text`` spoken by espeak-ng, 16 kHz mono float32, its own silence trimmed (10 ms frames above 0.01)."""
    raw = out.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True, capture_output=True)
    x = wn.load_audio(str(out))
    frames = x[: x.size // 160 * 160].reshape(-1, 160)
    loud = np.flatnonzero(np.abs(frames).max(axis=1) > 0.01)
    return x[loud[0] * 160:(loud[-1] + 1) * 160]


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")), reason="needs espeak-ng and sox")
def test_long_form_chunks_give_file_times(tiny, jfk_samples):
    with tempfile.TemporaryDirectory() as tmp:
        speech = _espeak("Please leave your shoes at the door.", Path(tmp) / "s.wav")
    sr = wn.SAMPLE_RATE
    audio = np.concatenate([np.zeros(2 * sr, np.float32), jfk_samples, np.zeros(40 * sr, np.float32), speech,
                            np.zeros(3 * sr, np.float32)])
    start = (2 * sr + jfk_samples.size + 40 * sr) / sr  # where the sentence starts, to the sample
    end = start + speech.size / sr
    result = tiny.transcribe(audio, word_timestamps=True)
    assert result.timings.get("chunks")  # the VAD-chunked path: speech pieces joined, times mapped back
    _check_promises(result, audio.size / sr)
    words = _words_of(result)
    late = [w for w in words if w.start > start - 1]
    assert normalize(" ".join(w.text for w in late)) == "please leave your shoes at the door"
    assert abs(late[0].start - start) <= TOLERANCE_S and abs(late[-1].end - end) <= TOLERANCE_S, (late, start, end)
    early = [w for w in words if w.start < start - 1]
    first = _named(early)
    assert abs(first["and"].start - (2 + JFK_ONSETS["and"])) <= TOLERANCE_S
    assert early[-1].end <= 2 + jfk_samples.size / sr  # not stretched over the 40 s of silence after it


# ----------------------------------------------------------------------------- subtitles
def test_karaoke_srt_and_vtt_parse_back(jfk_words):
    result = jfk_words["accurate"]
    words = _words_of(result)
    for fmt in ("srt", "vtt"):
        text = render(result, fmt, highlight_words=True)
        if fmt == "srt":
            cues = [(c.start.total_seconds(), c.end.total_seconds(), c.content) for c in srt.parse(text)]
        else:
            cues = [(_secs(c.start), _secs(c.end), c.raw_text) for c in webvtt.from_string(text).captions]
        lit = [(a, b, t) for a, b, t in cues if "<u>" in t]
        assert len(lit) == len(words)
        for (a, b, t), w in zip(lit, words):
            assert t.count("<u>") == 1 and t.count("</u>") == 1
            assert t.split("<u>")[1].split("</u>")[0] == w.text
            assert (a, b) == (pytest.approx(w.start, abs=1e-3), pytest.approx(w.end, abs=1e-3))
        starts = [a for a, _b, _t in cues]
        assert starts == sorted(starts) and all(a <= b for a, b, _t in cues)
        for a, b, t in cues:  # the pauses between words: the cue without an underlined word
            assert normalize(t.replace("<u>", "").replace("</u>", "")) in normalize(JFK_TEXT)


def _secs(stamp: str) -> float:
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


@pytest.mark.parametrize("width", [12, 20, 42])
def test_max_line_width_breaks_lines_between_words(jfk_words, width):
    result = jfk_words["accurate"]
    words = [w.text for w in _words_of(result)]
    for count in (None, 2):
        cues = list(srt.parse(render(result, "srt", max_line_width=width, max_line_count=count)))
        lines = [line for c in cues for line in c.content.split("\n")]
        assert all(len(line) <= width or " " not in line for line in lines), lines
        assert " ".join(lines).split() == words  # every word once, in order
        if count:
            assert all(len(c.content.split("\n")) <= count for c in cues)


def test_subtitle_options_need_word_times(tiny, jfk_samples):
    plain = tiny.transcribe(jfk_samples, preset="fast")
    with pytest.raises(wn.OptionError, match="word_timestamps"):
        render(plain, "srt", highlight_words=True)
    with pytest.raises(wn.OptionError):
        render(plain, "vtt", max_line_width=0)
    assert render(plain, "txt", max_line_width=10) == render(plain, "txt")  # other formats ignore them


def test_cli_highlight_words_implies_word_timestamps(tiny_en_ggml, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "whisperx_native", "transcribe", str(JFK_WAV), "-m", str(tiny_en_ggml),
                           "--highlight_words", "True", "--max-line-width", "20", "-f", "vtt,json",
                           "-o", str(tmp_path), "--preset", "fast", "-q"],
                          capture_output=True, text=True, timeout=300, cwd=tempfile.gettempdir())
    assert proc.returncode == 0, proc.stderr
    vtt = (tmp_path / "jfk.vtt").read_text()
    assert "<u>And</u>" in vtt
    assert all(len(line) <= 20 + len("<u></u>") for line in vtt.splitlines() if "-->" not in line)
    d = json.loads((tmp_path / "jfk.json").read_text())
    assert all(s["words"] for s in d["segments"])
