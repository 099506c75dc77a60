"""Output formats, read back with independent parsers; words; results as dicts and JSON."""

from __future__ import annotations

import csv
import io
import json

import pytest
import srt
import webvtt

import whisperx_native as wn
from whisperx_native.output import FORMATS, format_timestamp, render, write
from _util import JFK_TEXT, normalize


@pytest.fixture(scope="module")
def jfk_result(tiny, jfk_samples) -> wn.Result:
    result = tiny.transcribe(jfk_samples, token_timestamps=True)
    assert normalize(result.text) == normalize(JFK_TEXT)
    return result


def _check_spans(spans, duration):
    """(start, end) pairs in seconds: ordered, not overlapping, inside the audio."""
    assert spans
    prev = 0.0
    for start, end in spans:
        assert prev - 1e-3 <= start <= end <= duration + 1e-3, (prev, start, end)
        prev = end


@pytest.mark.parametrize("seconds, srt_text, vtt_text", [
    (0, "00:00:00,000", "00:00:00.000"),
    (7.9404, "00:00:07,940", "00:00:07.940"),
    (59.9996, "00:01:00,000", "00:01:00.000"),       # rounding carries into the minutes
    (3 * 3600 + 25 * 60 + 45.678, "03:25:45,678", "03:25:45.678"),
    (-0.01, "00:00:00,000", "00:00:00.000"),         # whisper.cpp's "no time" clamps to 0
])
def test_timestamps(seconds, srt_text, vtt_text):
    assert format_timestamp(seconds, ",") == srt_text
    assert format_timestamp(seconds) == vtt_text


def test_srt_parses_back(jfk_result, jfk_samples):
    subs = list(srt.parse(render(jfk_result, "srt")))
    assert [s.index for s in subs] == list(range(1, len(subs) + 1))
    _check_spans([(s.start.total_seconds(), s.end.total_seconds()) for s in subs], jfk_samples.size / 16000)
    assert normalize(" ".join(s.content for s in subs)) == normalize(jfk_result.text)
    assert subs[0].start.total_seconds() == pytest.approx(jfk_result.segments[0].start, abs=1e-3)


def test_vtt_parses_back(jfk_result, jfk_samples):
    text = render(jfk_result, "vtt")
    assert text.startswith("WEBVTT\n\n")
    cues = webvtt.from_string(text).captions
    _check_spans([(c.start_in_seconds + c.start_time.milliseconds / 1000,
                   c.end_in_seconds + c.end_time.milliseconds / 1000) for c in cues], jfk_samples.size / 16000)
    assert normalize(" ".join(c.text for c in cues)) == normalize(jfk_result.text)


def test_tsv_txt_and_json(jfk_result, jfk_samples):
    rows = list(csv.DictReader(io.StringIO(render(jfk_result, "tsv")), delimiter="\t"))
    assert len(rows) == len(jfk_result.segments)
    _check_spans([(int(r["start"]) / 1000, int(r["end"]) / 1000) for r in rows], jfk_samples.size / 16000)
    assert normalize(" ".join(r["text"] for r in rows)) == normalize(jfk_result.text)

    lines = render(jfk_result, "txt").splitlines()
    assert lines == [s.text.strip() for s in jfk_result.segments]

    d = json.loads(render(jfk_result, "json", source="jfk.wav"))
    assert d["source"] == "jfk.wav" and d["text"] == jfk_result.text
    assert d["language"] == "en" and d["model"] == jfk_result.model
    assert d["build"]["whisper_cpp"] == "1.8.5" and d["build"]["whisperx_native"] == wn.__version__
    assert d["timings"]["audio_seconds"] == pytest.approx(11.0, abs=0.01)
    seg = d["segments"][0]
    assert {"start", "end", "text", "tokens", "words", "no_speech_prob"} <= set(seg)
    assert {"id", "text", "p", "logprob", "start", "end"} <= set(seg["tokens"][0])
    assert {"start", "end", "text", "probability"} == set(seg["words"][0])


def test_words_from_token_timestamps(jfk_result, jfk_samples):
    words = [w for s in jfk_result.segments for w in s.words]
    assert normalize(" ".join(w.text for w in words)) == normalize(JFK_TEXT)
    _check_spans([(w.start, w.end) for w in words], jfk_samples.size / 16000)
    assert all(0 < w.probability <= 1 for w in words)
    assert not any(w.text.startswith(("[_", "<|")) for w in words)     # special tokens skipped
    # Punctuation joins its word (whether tiny.en punctuates depends on the state's history:
    # on a fresh state it writes none, as whisper-cli does).
    assert words[-1].text.rstrip(".") == "country"
    assert not any(w.text.strip() in {".", ",", "?", "!"} for w in words)
    for seg in jfk_result.segments:
        assert all(seg.start - 0.01 <= w.start and w.end <= seg.end + 0.01 for w in seg.words)


def test_no_words_without_token_timestamps(tiny, jfk_samples):
    result = tiny.transcribe(jfk_samples, preset="fast")
    assert result.segments and all(s.words == [] for s in result.segments)


def test_subtitle_text_is_escaped_and_kept_on_one_line():
    result = wn.Result([wn.Segment(0.0, 1.5, " a <b> & c\n\nd --> e {braces}")], "en")
    cue = webvtt.from_string(render(result, "vtt")).captions[0]
    assert cue.raw_text == "a &lt;b&gt; &amp; c d --&gt; e {braces}"
    sub = next(srt.parse(render(result, "srt")))
    assert sub.content == "a <b> & c d --> e {braces}"


def test_empty_result_writes_valid_empty_files(tmp_path):
    empty = wn.Result([], "en")
    assert render(empty, "srt") == "" and render(empty, "txt") == ""
    assert render(empty, "vtt") == "WEBVTT\n\n" and webvtt.from_string(render(empty, "vtt")).captions == []
    assert render(empty, "tsv") == "start\tend\ttext\n"
    for fmt in FORMATS:
        assert write(empty, fmt, tmp_path / f"e.{fmt}").exists()


def test_unknown_format():
    with pytest.raises(ValueError, match="srt"):
        render(wn.Result([], "en"), "ass")


def test_result_round_trips_through_json(jfk_result):
    d = json.loads(jfk_result.to_json())
    assert d["text"] == jfk_result.text and d["language_probability"] is None
    back = wn.Result(
        [wn.Segment(**{**s, "tokens": [wn.Token(**t) for t in s["tokens"]],
                       "words": [wn.Word(**w) for w in s["words"]]}) for s in d["segments"]],
        d["language"], d["language_probs"], d["timings"], d["model"])
    assert back == jfk_result


def test_language_probability(base, jfk_samples):
    result = base.transcribe(jfk_samples, preset="fast", audio_ctx=0)
    assert result.language == "en"
    assert result.language_probability == result.language_probs["en"] > 0.5
    assert json.loads(render(result, "json"))["language_probability"] == pytest.approx(result.language_probability)


def _raw(tid, text: bytes, p, start, end):
    from whisperx_native._native import RawToken

    return RawToken(tid, text, p, 0.0, start, end, None, None)   # the native layer's token record


def test_words_join_split_characters_and_skip_special_tokens():
    from whisperx_native.words import TokenTimeWords as _WordBuilder   # token_timestamps' words

    _EOT = 50256   # tiny.en's end-of-text id: every id from it on is special

    e_acute, nichi = "é".encode(), "日".encode()
    toks = [_raw(_EOT + 1, b"[_BEG_]", 1.0, 0, 0), _raw(1, b" caf", 0.5, 0.1, 0.2),
            _raw(2, e_acute[:1], 0.7, 0.2, 0.3), _raw(3, e_acute[1:], 0.9, 0.3, 0.4), _raw(4, b",", 0.9, 0.4, 0.45),
            _raw(5, b" ok", 0.8, 0.5, 0.6), _raw(_EOT + 200, b"[_TT_150]", 0.1, 3.0, 3.0)]
    words = _WordBuilder(_EOT, per_token=False).build(toks)
    assert words == [wn.Word(0.1, 0.45, "café,", pytest.approx(0.75)), wn.Word(0.5, 0.6, "ok", 0.8)]
    # Languages without spaces: every whole character is a word.
    toks = [_raw(1, nichi[:2], 0.5, 0.0, 0.1), _raw(2, nichi[2:], 0.5, 0.1, 0.2), _raw(3, "本".encode(), 1.0, 0.2, 0.3)]
    assert [w.text for w in _WordBuilder(_EOT, per_token=True).build(toks)] == ["日", "本"]
