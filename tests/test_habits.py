"""faster-whisper's habits in the Python API (issue 16): its keywords, file objects,
and the smaller API items (max_segment_length, JSON token times, manager events,
metrics, install messages). The CLI's items are in test_cli.py."""

from __future__ import annotations

import io
import json
import logging

import pytest

import whisperx_native as wn
from whisperx_native.compat import translate_options
from _util import JFK_TEXT, JFK_WAV, normalize


def test_faster_whisper_keywords_port_unchanged(tiny):
    # A faster-whisper call, keyword for keyword (the model and the import changed).
    result = tiny.transcribe(str(JFK_WAV), language="en", task="transcribe", beam_size=5, best_of=5,
                             temperature=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0], compression_ratio_threshold=2.4,
                             log_prob_threshold=-1.0, no_speech_threshold=0.6, condition_on_previous_text=True,
                             initial_prompt=None, word_timestamps=True, vad_filter=True,
                             vad_parameters={"min_silence_duration_ms": 500, "speech_pad_ms": 200, "threshold": 0.5},
                             without_timestamps=False, hotwords=None, log_progress=False)
    assert normalize(result.text) == normalize(JFK_TEXT)
    words = [w for s in result.segments for w in s.words]
    assert normalize(" ".join(w.text for w in words)) == normalize(JFK_TEXT)   # word_timestamps=True
    assert all(0 <= w.start <= w.end <= 11.01 for w in words)


def test_each_keyword_means_what_it_means_in_faster_whisper():
    t = translate_options
    assert t({"word_timestamps": True}) == {"word_timestamps": True}   # DTW word times: a field of its own
    assert t({"vad_filter": True}) == {"vad": True}
    assert t({"task": "translate"}) == {"translate": True}
    assert t({"task": "transcribe"}) == {"translate": False}
    assert t({"without_timestamps": True}) == {"timestamps": False}
    assert t({"hotwords": "kubectl etcd"}) == {"initial_prompt": "kubectl etcd"}
    assert t({"hotwords": "kubectl", "initial_prompt": "A talk."}) == {"initial_prompt": "kubectl A talk."}
    assert t({"log_prob_threshold": -0.5}) == {"logprob_threshold": -0.5}
    assert t({"temperature": (0.0, 0.25, 0.5, 0.75, 1.0)}) == {"temperature": 0.0, "temperature_increment": 0.25}
    assert t({"temperature": [0.3]}) == {"temperature": 0.3, "temperature_increment": 0.0}
    assert t({"vad_parameters": {"threshold": 0.4, "min_speech_duration_ms": 100, "max_speech_duration_s": 30,
                                 "min_silence_duration_ms": 300, "speech_pad_ms": 50}}) == {
        "vad_parameters": (("threshold", 0.4), ("min_speech_ms", 100), ("max_speech_s", 30.0),
                           ("min_silence_ms", 300), ("speech_pad_ms", 50))}
    assert t({"condition_on_previous_text": False}) == {"condition_on_previous_text": False}   # same name
    assert t({"log_progress": False, "beam_size": 2}) == {"beam_size": 2}
    plain = {"beam_size": 1}
    assert t(plain) is plain   # nothing to translate: no copy


@pytest.mark.parametrize("kw, message", [
    ({"vad_parameters": {"window_size_samples": 512}}, "'window_size_samples' is not supported"),
    ({"vad_parameters": {"threshold": "high"}}, "must be a number"),
    ({"task": "summarize"}, "task must be 'transcribe' or 'translate'"),
    ({"length_penalty": 0.5}, "length_penalty=0.5 has no equivalent"),
    ({"temperature": [0.0, 0.5, 0.6]}, "even steps up to 1.0"),
    ({"max_segment_length": 20, "token_timestamps": False}, "needs token timestamps"),
])
def test_keywords_without_an_equivalent_are_refused_by_name(tiny, kw, message):
    with pytest.raises((wn.OptionError, TypeError, ValueError)) as exc:
        tiny.transcribe(str(JFK_WAV), **kw)
    assert message in str(exc.value)


def test_task_translate_and_vad_parameters_take_effect(tiny, base, jfk_samples):
    with pytest.raises(ValueError, match="translate needs a multilingual"):
        tiny.transcribe(str(JFK_WAV), task="translate")
    assert normalize(base.transcribe(str(JFK_WAV), task="translate", language="en", preset="fast").text) == \
        normalize(JFK_TEXT)
    # speech must last a minute to count: none in 11 s, nothing transcribed (the parameters are used)
    silent = tiny.transcribe(jfk_samples, vad_filter=True, vad_parameters={"min_speech_duration_ms": 60000})
    assert silent.segments == []


def test_log_progress_logs(tiny, caplog):
    with caplog.at_level(logging.INFO, logger="whisperx_native"):
        tiny.transcribe(str(JFK_WAV), log_progress=True, preset="fast")
    assert any("transcribing: 100%" in r.getMessage() for r in caplog.records)


def test_file_objects_and_bytesio_are_decoded(tiny, tmp_path):
    want = normalize(JFK_TEXT)
    with open(JFK_WAV, "rb") as f:
        assert normalize(tiny.transcribe(f, preset="fast").text) == want
    assert normalize(tiny.transcribe(io.BytesIO(JFK_WAV.read_bytes()), preset="fast").text) == want
    with pytest.raises(wn.AudioError, match="binary mode"):
        with open(JFK_WAV, "r", errors="ignore") as f:
            tiny.transcribe(f)
    with pytest.raises(wn.AudioError, match=r"^<BytesIO>: not a recognised audio file"):
        tiny.transcribe(io.BytesIO(b"definitely not audio" * 50))
    with pytest.raises(wn.AudioError, match="empty"):
        tiny.transcribe(io.BytesIO(b""))


def test_max_segment_length_works_without_asking_for_token_timestamps(tiny):
    result = tiny.transcribe(str(JFK_WAV), max_segment_length=20, split_on_word=True, preset="fast")
    texts = [s.text.strip() for s in result.segments]
    assert len(texts) >= 5 and all(len(t) <= 24 for t in texts), texts
    assert normalize(" ".join(texts)) == normalize(JFK_TEXT)


def test_token_times_are_null_in_json_when_not_computed(tiny):
    plain = json.loads(tiny.transcribe(str(JFK_WAV), preset="fast").to_json())
    tokens = [t for s in plain["segments"] for t in s["tokens"]]
    assert tokens and all(t["start"] is None and t["end"] is None for t in tokens)
    timed = json.loads(tiny.transcribe(str(JFK_WAV), preset="fast", token_timestamps=True).to_json())
    tokens = [t for s in timed["segments"] for t in s["tokens"]]
    assert all(isinstance(t["start"], float) and t["start"] >= 0 for t in tokens)


def test_failed_background_switch_event_is_short(tiny_en_ggml, tmp_path, monkeypatch):
    monkeypatch.setenv("WHISPERX_NATIVE_CACHE", str(tmp_path))   # nothing installed, offline (conftest)
    events = []
    manager = wn.WhisperManager(str(tiny_en_ggml), on_event=events.append, memory_budget=10_000_000_000,
                                auto_downgrade=False, idle_timeout=None)
    try:
        manager.transcribe(str(JFK_WAV), preset="fast")
        with pytest.raises(wn.ModelError):
            manager.switch_model("small.en", background=True).result(timeout=120)
        summary = manager.metrics.summary()
    finally:
        manager.close()
    failed = [e for e in events if e.kind == "switch_failed"]
    assert len(failed) == 1
    error = failed[0].detail["error"]
    assert len(error) < 1000, error
    assert error.count("does not exist") == 1 and "as above" in error and "--ct2-dir" in error
    # metrics: figures rounded to 3 decimals, not 15 digits
    for key, value in summary.items():
        for v in (value.values() if isinstance(value, dict) else [value]):
            assert round(v, 3) == v, (key, value)


def test_install_error_names_the_cli_flag(tmp_path):
    from whisperx_native.models import store

    with pytest.raises(wn.ModelError) as exc:
        store.install("small.en", cache=tmp_path, offline=True)
    assert "--ct2-dir" in str(exc.value) and "pass ct2_dir" not in str(exc.value)
