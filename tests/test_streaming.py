"""Streaming transcription on real tiny.en: simulated capture → ring → VAD → partial/final events.

Accuracy is held against the offline transcript of the same audio (same model, same
preset): the streamed final text may be at most 2 WER points worse. Wall-clock
latency is measured by bench/streaming_latency.py, not asserted here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jiwer
import numpy as np
import pytest

import whisperx_native as wn
from _util import JFK_TEXT, normalize
from whisperx_native.realtime import (
    DEGRADED, FINAL, OVERFLOW, PARTIAL, RECOVERED, LatencyGovernor, RingBuffer, SimulatedCapture,
    StreamingTranscriber,
)
from whisperx_native.options import audio_ctx_for

DATA = Path(__file__).resolve().parent / "data"
SR = 16000
MAX_WER_LOSS = 0.02


@pytest.fixture(scope="module")
def long_speech():
    audio = wn.load_audio(DATA / "long_speech.ogg")
    ref = (DATA / "long_speech.txt").read_text()
    layout = json.loads((DATA / "long_speech.json").read_text())
    return audio, ref, layout


@pytest.fixture(scope="module")
def long_offline(tiny, long_speech):
    """The offline transcript of the long file (same model and preset as the stream)."""
    return tiny.transcribe(long_speech[0], preset="fast", language="en")


@pytest.fixture(scope="module")
def long_stream(tiny, long_speech):
    """The long file streamed in fast mode with default settings."""
    return stream(tiny, long_speech[0], realtime=False)


def stream(engine, audio, *, realtime, ring_s=30.0, rate=SR, channels=1, dtype="float32", speed=1.0, **kw):
    ring = RingBuffer(ring_s, input_rate=rate, input_channels=channels)
    cap = SimulatedCapture(audio, ring, realtime=realtime, speed=speed, dtype=dtype)
    kw.setdefault("latency_budget_s", None)
    tr = StreamingTranscriber(engine, ring, **kw)
    cap.start()
    events = tr.run()
    cap.join(30)
    return tr, events, ring


def wer(ref: str, hyp: str) -> float:
    return jiwer.wer(normalize(ref), normalize(hyp))


def check_structure(tr, events):
    """Finals are committed for good: in time order, never overlapping, never repeated,
    and no partial of an utterance comes after that utterance's final."""
    finals = [e for e in events if e.kind == FINAL]
    assert finals == tr.finals
    for a, b in zip(finals, finals[1:]):
        assert b.start >= a.end - 1e-6, (a, b)
        assert b.utterance >= a.utterance
    assert all(f.text.strip() and f.end >= f.start for f in finals)
    closed = set()
    for e in events:
        if e.kind == FINAL:
            closed.add(e.utterance)
        elif e.kind == PARTIAL:
            assert e.utterance not in closed, f"partial after the final of utterance {e.utterance}"
    return finals


def seam_errors(ref: str, finals):
    """Words lost or repeated at the seams where one utterance was cut in two.

    Returns (lost, repeated, split, n_seams): a *lost* word is a deletion next to a
    seam; a *repeated* one an inserted word equal to the word across the seam; a
    *split* one an insertion that is neither (a word cut in two halves, "plate form")."""
    words, seams = [], []
    for f in finals:
        words += normalize(f.text).split()
        if "cut_at" in f.detail:
            seams.append(len(words))          # index of the first word after the seam
    out = jiwer.process_words(normalize(ref), " ".join(words))
    lost, repeated, split = [], [], []
    for chunk in out.alignments[0]:
        for k in seams:
            if not chunk.hyp_start_idx - 1 <= k <= chunk.hyp_end_idx + 1:
                continue
            context = words[max(0, k - 2):k + 2]
            if chunk.type == "delete":
                lost.append((k, context))
            elif chunk.type == "insert":
                same = 0 < k < len(words) and words[k - 1] == words[k]
                (repeated if same else split).append((k, context))
    return lost, repeated, split, len(seams)


def test_jfk_realtime_capture_48k_int16_stereo(tiny, jfk_samples):
    offline = tiny.transcribe(jfk_samples, preset="fast", language="en")
    # finals by the decoder offline ran (by default they use the file decoder: bench figures)
    tr, events, ring = stream(tiny, jfk_samples, realtime=True, rate=48000, channels=2, dtype="int16",
                              final_preset="fast")
    finals = check_structure(tr, events)
    assert len(finals) >= 2
    assert [e for e in events if e.kind == PARTIAL], "no partial result while jfk was speaking"
    assert wer(JFK_TEXT, tr.text) <= wer(JFK_TEXT, offline.text) + MAX_WER_LOSS, (tr.text, offline.text)
    assert finals[0].start < 1.0 and finals[-1].end > 9.0   # absolute times since stream start
    assert ring.dropped == 0


def test_the_last_final_ends_with_the_speech_not_the_stream(tiny, jfk_samples):
    """The stream ends 0.4 s after jfk's last word on a breath the VAD takes for speech: the
    open utterance's final ends where the speech did (with context, the breath read "Okay.")."""
    tr, events, _ = stream(tiny, jfk_samples, realtime=False, partials=False)
    finals = check_structure(tr, events)
    assert normalize(finals[-1].text).endswith("for your country"), finals[-1].text
    assert finals[-1].end < jfk_samples.size / SR - 0.1


def test_a_long_silence_keeps_no_context_audio(tiny, jfk_samples):
    """The audio of committed utterances is kept only while a final to come could hear it."""
    from whisperx_native.realtime import transcriber as T

    audio = np.concatenate([jfk_samples, np.zeros(SR * 60, np.float32)])
    tr, events, _ = stream(tiny, audio, realtime=False, partials=False)
    assert check_structure(tr, events)
    assert tr._audio.n < (T.CONTEXT_WINDOW_S - 10) * SR and not tr._history, tr._audio.n / SR


def test_long_file_fast_mode_matches_offline(long_speech, long_offline, long_stream):
    audio, ref, layout = long_speech
    offline = long_offline
    tr, events, ring = long_stream
    finals = check_structure(tr, events)
    w_stream, w_off = wer(ref, tr.text), wer(ref, offline.text)
    assert w_stream <= w_off + MAX_WER_LOSS, (w_stream, w_off)
    # every phrase of the file is covered by some final
    for ph in layout["phrases"]:
        assert any(f.start < ph["end"] and f.end > ph["start"] for f in finals), ph["text"]
    assert ring.dropped == 0 and not [e for e in events if e.kind == OVERFLOW]


def test_silence_and_noise_give_no_text(tiny, long_speech, long_stream):
    audio, _, layout = long_speech
    # the file's 6 s of digital silence and 5 s of faint noise (see tests/data/make_long_speech.py)
    phrases = layout["phrases"]
    gaps = [(a["end"], b["start"]) for a, b in zip(phrases, phrases[1:]) if b["start"] - a["end"] > 4.0]
    assert len(gaps) == 2
    tr, events, _ = long_stream
    for lo, hi in gaps:
        inside = [e for e in events if e.kind in (FINAL, PARTIAL) and e.start > lo + 0.5 and e.end < hi - 0.5]
        assert inside == [], inside
    # and a stream of nothing but silence and noise never reaches whisper
    rng = np.random.default_rng(0)
    quiet = np.concatenate([np.zeros(SR * 4, np.float32), (rng.standard_normal(SR * 6) * 0.003).astype(np.float32)])
    tr, events, _ = stream(tiny, quiet, realtime=False)
    assert [e for e in events if e.text] == []
    assert tr.stats["transcriptions"] == 0


def test_cut_utterances_lose_and_repeat_no_words(tiny, long_speech):
    """Utterances longer than the window are cut at the quietest 160 ms; the words at
    those seams must be neither dropped nor repeated."""
    audio, ref, layout = long_speech
    # the first five sentences (44 s): four of them are longer than the 6 s window
    phrases = layout["phrases"][:5]
    audio = audio[: int((phrases[-1]["end"] + 1.0) * SR)]
    ref = " ".join(p["text"] for p in phrases)
    offline = tiny.transcribe(audio, preset="fast", language="en")
    tr, events, _ = stream(tiny, audio, realtime=False, max_utterance_s=6.0)
    finals = check_structure(tr, events)
    lost, repeated, split, n_seams = seam_errors(ref, finals)
    assert n_seams >= 3, "the test did not produce cut seams"
    assert lost == [] and repeated == [], (lost, repeated)
    # Synthetic speech has no pause between some words, so a forced cut can split one in two
    # halves ("plate form"): neither lost nor repeated, but a recognition error. Accuracy with
    # forced cuts every 6 s is reported by bench/streaming_latency.py, not held to 2 points here.
    assert len(split) <= n_seams // 2, split
    assert wer(ref, tr.text) <= wer(ref, offline.text) + 0.1


def test_window_mode_without_vad(tiny, jfk_samples):
    offline = tiny.transcribe(jfk_samples, preset="fast", language="en")
    tr, events, _ = stream(tiny, jfk_samples, realtime=False, vad=False, max_utterance_s=6.0, final_preset="fast")
    check_structure(tr, events)
    assert len(tr.finals) >= 2
    # 22 words: one word is 4.5 points; windows cut without VAD may cost one
    assert wer(JFK_TEXT, tr.text) <= wer(JFK_TEXT, offline.text) + 0.05, tr.text


def test_overflow_is_reported_and_finals_stay_ordered(tiny, jfk_samples):
    # capture 40x faster than real time into a 1 s ring: the consumer cannot keep up
    tr, events, ring = stream(tiny, np.concatenate([jfk_samples] * 2), realtime=True, speed=40.0, ring_s=1.0)
    check_structure(tr, events)
    lost = [e for e in events if e.kind == OVERFLOW]
    assert ring.dropped > 0 and lost
    assert sum(e.detail["lost_s"] for e in lost) == pytest.approx(ring.dropped / SR, abs=1e-3)


def test_falling_behind_degrades(tiny, long_speech):
    """Fed faster than it can transcribe, with a 0.5 s budget, the stream steps down."""
    audio = long_speech[0][: SR * 60]
    tr, events, _ = stream(tiny, audio, realtime=False, latency_budget_s=0.5)
    degraded = [e for e in events if e.kind == DEGRADED]
    assert degraded and degraded[0].detail["level"] == 1 and degraded[0].detail["behind_s"] > 0.5
    assert tr.text


def test_governor_policy_with_a_fake_clock():
    now = [0.0]
    g = LatencyGovernor(1.0, cooldown_s=2.0, recover_s=10.0, clock=lambda: now[0])
    assert g.observe(0.2) == 0 and g.level == 0
    assert g.observe(1.5) == 1 and g.level == 1
    now[0] = 1.0
    assert g.observe(3.0) == 0                      # cooldown
    now[0] = 2.5
    assert g.observe(3.0) == 1 and g.level == 2
    now[0] = 5.0
    assert g.observe(3.0) == 1 and g.level == 3
    now[0] = 8.0
    assert g.observe(9.0) == 0 and g.level == 3     # nothing cheaper left
    g.cannot_go_below(3)                            # the model was swapped
    for t in range(9, 40):
        now[0] = float(t)
        assert g.observe(0.0) == 0
    g2 = LatencyGovernor(1.0, recover_s=10.0, clock=lambda: now[0])
    now[0] = 0.0
    g2.observe(2.0)
    for t, expect in ((1, 0), (5, 0), (11, 0), (15, -1)):   # calm from t=5, 10 s later
        now[0] = float(t)
        assert g2.observe(0.1 if t > 1 else 0.5) == expect, t
    assert g2.level == 0 and g2.worst_behind_s == 2.0
    assert LatencyGovernor(None).observe(100.0) == 0
    assert {RECOVERED, DEGRADED} == {"recovered", "degraded"}


def test_audio_ctx_avoids_stale_flash_attention_padding():
    for seconds in (0.5, 3, 7.7, 10.3, 12, 20, 25, 29.9):
        ctx = audio_ctx_for(seconds)
        assert ctx >= seconds / 30 * 1500
        assert ctx == 1500 or ctx % 256 == 0
        assert ctx >= 384


def test_on_a_manager(tiny_en_ggml, jfk_samples):
    with wn.WhisperManager(str(tiny_en_ggml), idle_timeout=None, auto_downgrade=False) as mgr:
        tr, events, _ = stream(mgr, jfk_samples, realtime=False)
        check_structure(tr, events)
        assert wer(JFK_TEXT, tr.text) < 0.2


def _pauseless_runs(phrases, max_gap_s=0.5):
    """Groups of consecutive phrases with less than ``max_gap_s`` between them."""
    runs = [[phrases[0]]]
    for a, b in zip(phrases, phrases[1:]):
        if b["start"] - a["end"] < max_gap_s:
            runs[-1].append(b)
        else:
            runs.append([b])
    return [r for r in runs if len(r) > 1]


def test_adaptive_endpoint_detects_sentence_ends_in_pauseless_speech(long_speech):
    """Silero on the real file, fed frame by frame: with adaptive endpointing every
    sentence's end is detected within 0.6 s of audio, also inside the 18 s run whose
    sentences are only 0.35-0.45 s apart; with a fixed 500 ms pause the run's first
    sentences are not endpointed before the run ends."""
    from whisperx_native.realtime import StreamingVad

    audio, _, layout = long_speech
    phrases = layout["phrases"]
    (run,) = [r for r in _pauseless_runs(phrases) if r[-1]["end"] - r[0]["start"] > 15.0]

    def detected_ends(**kw):
        """(end sample, audio position when it was reported), in seconds."""
        out = []
        with StreamingVad(**kw) as v:
            if kw.get("min_silence_long_ms"):
                # the requirement slides from 500 ms (<= 3 s of speech) to 200 ms (>= 8 s)
                need = [v.silence_frames_needed(int(s * SR)) for s in np.arange(0, 12, 0.25)]
                assert need[0] == v.min_silence_frames == 16 and need[-1] == v.min_silence_long_frames == 6
                assert all(a >= b for a, b in zip(need, need[1:]))
            for i in range(0, audio.size, 512):
                out += [(b.sample / SR, (i + 512) / SR) for b in v.feed(i, audio[i:i + 512]) if b.kind == "end"]
        return out

    def delays(ends):
        return [min((at for s, at in ends if s >= ph["end"] - 0.3), default=np.inf) - ph["end"] for ph in phrases]

    adaptive = detected_ends(min_silence_ms=500, min_silence_long_ms=200)
    assert max(delays(adaptive)) < 0.6, delays(adaptive)
    for a, b in zip(run, run[1:]):   # the cut falls in the gap between the sentences, not in a word
        assert [s for s, _ in adaptive if a["end"] - 0.05 < s < b["start"] + 0.05], (a["text"], b["text"])
    fixed = detected_ends(min_silence_ms=500)
    assert all(d > 5.0 for d in delays(fixed)[phrases.index(run[0]):phrases.index(run[-1])])


def test_adaptive_endpoint_finalizes_each_sentence_of_a_pauseless_run(tiny, long_speech, long_stream):
    """The stream (default settings) ends an utterance at each sentence gap of the 18 s
    run instead of holding all of it to the end (or to the max_utterance_s cut):
    each sentence is final in its own utterance, with no word lost or repeated at the
    seams, and the file needs no forced cut at all. Without adaptive endpointing the
    run stays one utterance."""
    audio, _, layout = long_speech
    (run,) = [r for r in _pauseless_runs(layout["phrases"]) if r[-1]["end"] - r[0]["start"] > 15.0]
    tr, events, _ = long_stream
    finals = check_structure(tr, events)
    assert not [f for f in finals if "cut_at" in f.detail]

    def utterances_of(finals, ph):
        return {f.utterance for f in finals if f.start < ph["end"] and f.end > ph["start"]}

    utts = [utterances_of(finals, ph) for ph in run]
    assert all(utts), utts
    for a, b in zip(utts, utts[1:]):
        assert not a & b, utts          # consecutive sentences are finalized separately
    # seams between the run's utterances: no word lost, repeated or split
    mine = [f for f in finals if f.utterance in set().union(*utts)]
    marked = [dataclasses.replace(f, detail={"cut_at": f.end}) if g.utterance != f.utterance else f
              for f, g in zip(mine, mine[1:])] + mine[-1:]
    lost, repeated, split, n_seams = seam_errors(" ".join(ph["text"] for ph in run), marked)
    assert n_seams == len(run) - 1
    assert lost == [] and repeated == [] and split == [], (lost, repeated, split)

    # the same stretch with a fixed 500 ms endpoint: one utterance
    lo, hi = int((run[0]["start"] - 0.5) * SR), int((run[-1]["end"] + 1.0) * SR)
    tr2, events2, _ = stream(tiny, audio[lo:hi], realtime=False, min_silence_long_ms=None, partials=False)
    check_structure(tr2, events2)
    assert len({f.utterance for f in tr2.finals}) == 1 and not [f for f in tr2.finals if "cut_at" in f.detail]


def test_final_keeps_a_sentence_after_a_short_one_in_the_same_utterance(tiny, jfk_samples, long_speech):
    """jfk's last phrase, a 0.1 s pause, then a sentence: one utterance. Decoded as a plain
    clip, tiny.en can close the first sentence with a single timestamp at the end of the audio
    and whisper then skips the rest of the window as silence: the second sentence is lost. A final is
    VAD speech and is decoded as the long-form path decodes a chunk (``speech_only``: resume at
    that timestamp; ``window_start_limit_ms``: no window on the trailing padding), so both
    sentences are kept."""
    audio, _, layout = long_speech
    (ph,) = [p for p in layout["phrases"] if p["text"].startswith("He packed")]
    quiet = lambda s: np.zeros(int(s * SR), np.float32)  # noqa: E731
    clip = np.concatenate([quiet(0.5), jfk_samples[int(7.9 * SR):int(11.0 * SR)], quiet(0.1),
                           audio[int((ph["start"] - 0.1) * SR):int((ph["end"] + 0.05) * SR)], quiet(1.0)])
    ref = f"ask what you can do for your country. {ph['text']}"
    tr, events, _ = stream(tiny, clip, realtime=False, partials=False)
    finals = check_structure(tr, events)
    assert len({f.utterance for f in finals}) == 1, [(f.utterance, f.text) for f in finals]
    assert wer(ref, tr.text) <= 0.15, tr.text
    second_end = 0.5 + 3.1 + 0.1 + 0.1 + ph["end"] - ph["start"]
    assert finals[-1].end > second_end - 1.0, finals   # the second sentence's final, at its time
    # what this guards against: the same stream with finals decoded as plain clips loses the
    # second sentence. (A plain decode of the whole clip lost it too until patch 0025 changed
    # the decoder's rounding; whether that single timestamp comes is a knife's edge.)
    tr, events, _ = stream(tiny, clip, realtime=False, partials=False, speech_only=False, window_start_limit_ms=0)
    assert wer(ref, tr.text) > 0.5, tr.text


class _Recording:
    """The real model, with each call's audio length and options kept."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def transcribe(self, audio, **opts):
        result = self.model.transcribe(audio, **opts)
        self.calls.append((audio.size / SR, opts, result.text, [seg.text.strip() for seg in result.segments]))
        return result


def _first_phrases(long_speech, n=6):
    audio, ref, layout = long_speech
    phrases = layout["phrases"][:n]                  # 8.3, 7.1, 8.5, 4.7, 5.7 s and jfk's phrases
    return audio[: int((phrases[-1]["end"] + 1.0) * SR)], " ".join(p["text"] for p in phrases)


def test_finals_hear_the_committed_utterances_before_them(tiny, long_speech):
    """A final's window starts at the committed utterances just before its own that fit with
    it in CONTEXT_WINDOW_S; their final text, timed in that window, is the decoder's prefix, and
    only the text after it is committed. The first final has no context (and no prompt)."""
    from whisperx_native.realtime import transcriber as T

    audio, ref = _first_phrases(long_speech)
    rec = _Recording(tiny)
    tr, events, _ = stream(rec, audio, realtime=False, partials=False)
    finals = check_structure(tr, events)
    committed, with_context = [], 0
    for seconds, opts, text, segments in rec.calls:  # partials off: every call is a final
        assert opts["speech_only"] and opts["window_start_limit_ms"] > 0
        prefix = opts.get("prefix")
        if not committed:
            assert prefix is None and "initial_prompt" not in opts
        else:
            assert prefix, "a final after committed speech got no context"
            with_context += 1
            assert seconds <= T.CONTEXT_WINDOW_S + 0.05
            times = [t for a, b, _ in prefix for t in (a, b)]
            assert times == sorted(times) and 0 <= times[0] and times[-1] <= seconds
            said = [t.strip() for _, _, t in prefix]
            assert said == committed[-len(said):], (said, committed)   # the committed text, in order
            assert "initial_prompt" not in opts                         # the prefix is the context
            # the decode continues after the prefix: the context's last sentence is not said again
            assert normalize(said[-1]) not in normalize(text), (said[-1], text)
        committed += [seg for seg in segments if seg]
    assert with_context >= 4
    assert " ".join(committed) == tr.text
    assert wer(ref, tr.text) <= 0.12, tr.text


def test_finals_do_not_depend_on_how_the_audio_was_read(tiny, long_speech):
    """Context included, the finals are a function of the audio: blocks of 50 ms or 1.3 s, read
    as they come or all at once, partials or not."""
    audio, _ = _first_phrases(long_speech)
    runs = []
    for block_s, partials in ((0.05, True), (1.3, False), (0.4, True)):
        ring = RingBuffer(60.0)
        cap = SimulatedCapture(audio, ring, realtime=False, block_s=block_s)
        tr = StreamingTranscriber(tiny, ring, latency_budget_s=None, partials=partials)
        cap.start()
        tr.run()
        cap.join(30)
        runs.append([(f.text, f.start, f.end) for f in tr.finals])
    assert runs[0] and runs[1] == runs[0] and runs[2] == runs[0]


def test_without_context_short_finals_are_prompted_with_the_last_sentence(tiny, long_speech):
    """context=False: a final of an utterance shorter than PROMPT_BELOW_S is prompted with the
    last PROMPT_CHARS of committed text; the first final, and finals of longer utterances (where a
    prompt made tiny.en stop after the first sentence), are not; condition_on_previous_text=False
    prompts none."""
    from whisperx_native.realtime import transcriber as T

    audio, ref = _first_phrases(long_speech)
    rec = _Recording(tiny)
    tr, events, _ = stream(rec, audio, realtime=False, partials=False, context=False)
    check_structure(tr, events)
    committed = ""
    prompted = long_unprompted = 0
    for seconds, opts, text, _ in rec.calls:         # partials off: every call is a final
        assert opts["speech_only"] and opts["window_start_limit_ms"] > 0 and "prefix" not in opts
        if committed and seconds < T.PROMPT_BELOW_S:
            assert opts["initial_prompt"] == committed[-T.PROMPT_CHARS:]
            prompted += 1
        else:
            assert "initial_prompt" not in opts, (seconds, opts)
            long_unprompted += bool(committed)
        committed = " ".join(x for x in (committed, text.strip()) if x)
    assert prompted >= 3 and long_unprompted >= 1, (prompted, long_unprompted)
    assert wer(ref, tr.text) <= 0.12, tr.text

    rec = _Recording(tiny)
    stream(rec, audio, realtime=False, partials=False, condition_on_previous_text=False, context=False)
    assert not [opts for _, opts, _, _ in rec.calls if "initial_prompt" in opts]
