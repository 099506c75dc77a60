"""The pipeline's decisions without a model: options and threads, language, the plan of a
call (one pass or VAD chunks from synthetic speech segments), features, and results
assembled from raw native records (issue 17: engine / pipeline split)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import whisperx_native as wn
from whisperx_native import options, pipeline, threads
from whisperx_native._native import RawSegment, RawToken
from whisperx_native.engine import StateGroup, StatePool
from whisperx_native.options import PRESETS
from whisperx_native.vad import Chunk

SR = 16000


@pytest.fixture(autouse=True)
def _eight_cores(monkeypatch):
    """Thread counts as on an 8-core machine, whatever this one has."""
    monkeypatch.setattr(threads, "cpu_count", lambda: 8)


def _resolve(preset=None, **kw):
    defaults = dict(n_threads=4, explicit_threads=False, adapt_threads=False, multilingual=True, name="m")
    defaults.update(kw.pop("_model", {}))
    return pipeline.resolve(preset, kw, **defaults)


# --------------------------------------------------------------------------- options and threads
def test_resolve_applies_preset_keywords_and_the_models_threads():
    opts = _resolve("fast", beam_size=2)
    assert opts.beam_size == 2 and opts.temperature_increment == 0.0 and opts.n_threads == 4
    assert opts.audio_ctx is None  # fast: each run trims (and checks) its own context (pipeline.full_run)
    assert _resolve(None).beam_size == 5  # accurate by default
    assert _resolve(None, language="auto").language is None


def test_threads_adapt_to_load_only_when_nobody_chose_a_count():
    busy = dict(adapt_threads=True, load=lambda n: 1)
    assert pipeline.resolve(None, {}, n_threads=4, **busy).n_threads == 1
    assert pipeline.resolve(None, {"n_threads": 3}, n_threads=4, **busy).n_threads == 3
    assert pipeline.resolve(None, {}, n_threads=4, explicit_threads=True, **busy).n_threads == 4
    opts = pipeline.resolve(None, {"decode_threads": 2}, n_threads=4, **busy)
    assert (opts.n_threads, opts.decode_threads) == (1, 1)
    with pytest.raises(wn.OptionError, match="decode_threads"):
        pipeline.resolve(None, {"n_threads": 2, "decode_threads": 3}, n_threads=4)


def test_clamp_threads_is_the_thread_policy(monkeypatch):
    monkeypatch.setattr(threads, "cpu_count", lambda: 2)
    assert pipeline.clamp_threads(None) == pipeline.clamp_threads(0) == threads.default_threads() == 2
    assert pipeline.clamp_threads(16) == 2
    with pytest.raises(wn.OptionError):
        pipeline.clamp_threads(-1)


def test_language_rules():
    assert _resolve(language="DE").language == "de"
    with pytest.raises(wn.OptionError, match="unknown language"):
        _resolve(language="xx")
    english_only = {"_model": {"multilingual": False, "name": "tiny.en"}}
    with pytest.raises(wn.OptionError, match="English-only"):
        _resolve(language="de", **english_only)
    with pytest.raises(wn.OptionError, match="translate"):
        _resolve(translate=True, **english_only)
    assert _resolve(language="en", **english_only).language == "en"


# --------------------------------------------------------------------------- the plan
def test_one_pass_plan():
    opts = _resolve("fast", language="en")
    plan = pipeline.make_plan(opts, 10 * SR, multilingual=True, preset="fast")
    assert not plan.chunked and plan.workers == 1 and plan.run_opts == opts
    assert plan.preset == "fast" and plan.language == "en" and not plan.detect
    assert plan.audio_s == 10.0 and plan.n_threads == 4
    assert plan.trim_ctx and plan.full_ctx  # the run trims its context and checks it (pipeline.full_run)
    default = pipeline.make_plan(_resolve(None), 10 * SR, multilingual=True)
    assert default.full_ctx and not default.trim_ctx
    asked = pipeline.make_plan(_resolve("fast", audio_ctx=512), 10 * SR, multilingual=True, preset="fast")
    assert not asked.full_ctx and not asked.trim_ctx  # a context asked for is used as asked
    whole = pipeline.make_plan(_resolve("fast", audio_ctx=0), 10 * SR, multilingual=True, preset="fast")
    assert whole.full_ctx and not whole.trim_ctx  # 0: the whole window, as 1500


def test_language_is_detected_only_for_multilingual_models_asked_for_none():
    opts = _resolve(None)
    assert pipeline.make_plan(opts, 10 * SR, multilingual=True).detect
    plan = pipeline.make_plan(opts, 10 * SR, multilingual=False)
    assert not plan.detect and plan.language == "en" and plan.opts.language is None  # as asked
    assert not pipeline.make_plan(opts.replace(language="fr"), 10 * SR, multilingual=True).detect


def test_chunk_plan_from_synthetic_speech():
    n = 100 * SR
    speech = [(1.0, 10.0), (12.0, 25.0), (40.0, 55.0), (60.0, 62.0), (80.0, 99.0)]
    opts = _resolve(None, n_threads=4)
    plan = pipeline.make_plan(opts, n, multilingual=True, speech=speech, vad_ms=5.0)
    assert plan.chunked and plan.vad_ms == 5.0
    assert all(isinstance(c, Chunk) for c in plan.chunks)
    joined = [sum(b - a for a, b in c.pieces) / SR for c in plan.chunks]
    assert all(j <= 30.0 for j in joined) and sum(joined) == pytest.approx(9 + 13 + 15 + 2 + 19)
    assert [c.start for c in plan.chunks] == sorted(c.start for c in plan.chunks)
    assert plan.workers == min(len(plan.chunks), 4)
    # each state gets its share of the call's threads, and runs speech only
    assert plan.run_opts.n_threads == max(1, 4 // plan.workers) and plan.run_opts.speech_only
    assert plan.n_threads == 4 and not plan.opts.speech_only


def test_fast_preset_trims_each_chunks_encoder_context():
    # measured (long_a / long_b, tiny.en): encoder -9 %, WER 22.17 -> 22.01 / 16.74 -> 16.59 %;
    # the default preset keeps full windows (trimmed, its WER rose 0.6-0.8 points)
    n = 100 * SR
    speech = [(1.0, 10.0), (12.0, 25.0), (40.0, 55.0), (80.0, 99.0)]
    fast = pipeline.make_plan(_resolve("fast"), n, multilingual=True, preset="fast", speech=speech)
    assert fast.trim_ctx and fast.full_ctx  # full_ctx: run_opts as asked; trimming per chunk
    assert not pipeline.make_plan(_resolve(None), n, multilingual=True, speech=speech).trim_ctx
    asked = _resolve("fast", audio_ctx=1024)
    assert not pipeline.make_plan(asked, n, multilingual=True, preset="fast", speech=speech).trim_ctx
    assert [options.audio_ctx_for(s) for s in (8.0, 13.0, 22.7, 29.8)] == [512, 768, 1280, 1500]


def test_chunk_workers_and_threads_per_state():
    n = 200 * SR
    speech = [(t, t + 25.0) for t in range(0, 200, 30)]  # 7 chunks
    plan = pipeline.make_plan(_resolve(None, n_threads=4, chunk_workers=2), n, multilingual=True, speech=speech)
    assert len(plan.chunks) == 7 and plan.workers == 2 and plan.run_opts.n_threads == 2
    plan = pipeline.make_plan(_resolve(None, n_threads=2, decode_threads=2), n, multilingual=True, speech=speech)
    assert plan.workers == 2 and (plan.run_opts.n_threads, plan.run_opts.decode_threads) == (1, 1)


def test_no_speech_plans_no_chunks():
    plan = pipeline.make_plan(_resolve(None), 60 * SR, multilingual=True, speech=[])
    assert plan.chunked and plan.chunks == () and plan.workers == 1


def test_when_the_long_form_path_is_taken():
    opts = _resolve(None)
    assert not pipeline.use_chunks(opts, 30.0) and pipeline.use_chunks(opts, 30.5)
    assert pipeline.use_chunks(opts.replace(vad=True), 5.0)
    params = pipeline.vad_parameters(opts.replace(vad_parameters=(("speech_pad_ms", 200),)))
    assert params == {**pipeline.CHUNK_VAD, "speech_pad_ms": 200}
    assert not pipeline.use_chunks(opts.replace(vad=False), 300.0)
    assert not pipeline.use_chunks(opts.replace(offset_ms=1000), 300.0)


# --------------------------------------------------------------------------- features and language
def test_features_only_where_whisper_cpp_need_not_compute_them():
    rng = np.random.default_rng(0)
    feats = pipeline.Features(np.abs(rng.standard_normal((80, 201))).astype(np.float32))
    x = rng.standard_normal(3 * SR).astype(np.float32) * 0.1
    mel, frames, ms = feats.compute(x, PRESETS["fast"])
    assert mel.shape[0] == 80 and frames == 299 and ms >= 0
    for opts in (PRESETS["fast"].replace(token_timestamps=True), PRESETS["fast"].replace(offset_ms=10)):
        assert feats.compute(x, opts) == (None, 0, 0.0)
    assert feats.compute(x, PRESETS["fast"], enabled=False) == (None, 0, 0.0)


class _FakeState:
    def __init__(self):
        self.seen = None

    def detect_language(self, samples, n_threads):
        self.seen = (samples.size, n_threads)
        return {"de": 0.9, "en": 0.09999, "fr": 0.00001}


def test_detect_language_reads_the_first_window():
    st = _FakeState()
    lang, probs, ms = pipeline.detect_language(st, np.zeros(90 * SR, np.float32), 3)
    assert lang == "de" and probs == pytest.approx({"de": 0.9, "en": 0.09999}) and ms >= 0
    assert st.seen == (30 * SR, 3)


# --------------------------------------------------------------------------- raw records → results
def _raw(t0, t1, text, toks=None):
    return RawSegment(t0, t1, text, 0.01, False, toks)


def test_segments_of_raw_records():
    toks = [RawToken(10, b" Hi", 0.9, -0.1, 0.123456, 0.5, None, None),
            RawToken(11, b" there", 0.8, -0.2, 0.5, 1.0, None, None)]
    seg = pipeline.segment(_raw(0.1234, 1.0006, " Hi there", toks))
    assert (seg.start, seg.end, seg.text) == (0.123, 1.001, " Hi there")
    assert [(t.id, t.text, t.start) for t in seg.tokens] == [(10, " Hi", 0.123), (11, " there", 0.5)]
    assert seg.words == [] and pipeline.segment(_raw(0, 1, "x")).tokens == []
    words_of = pipeline.word_builder(PRESETS["fast"].replace(token_timestamps=True), "en", 50256, None, "m")
    assert [w.text for w in pipeline.segments([_raw(0, 1, " Hi there", toks)], words_of)[0].words] == \
        ["Hi", "there"]
    assert pipeline.word_builder(PRESETS["fast"], "en", 50256, None, "m") is None
    with pytest.raises(wn.OptionError, match="alignment heads"):
        pipeline.word_builder(PRESETS["fast"].replace(word_timestamps=True), "en", 50256, None, "m")


def test_a_chunk_run_maps_times_back_to_the_file():
    chunk = Chunk(((10 * SR, 12 * SR), (20 * SR, 23 * SR)))

    class State:
        def full(self, audio, opts, mel=None, mel_frames=0, on_segment=None):
            assert audio.size == int(5.1 * SR) and mel is None  # numpy features off: the samples
            # no window for the padding after the speech: 5.1 s joined, 0.4 s VAD padding, 0.5 s margin
            assert opts.window_start_limit_ms == 4200
            return {"segments": [_raw(0.5, 2.0, " a"), _raw(2.2, 4.0, " b")],
                    "timings": {"mel_ms": 1.0, "encode_ms": 2.0, "decode_ms": 3.0, "total_ms": 7.0, "n_encode": 1}}

    segs, native = pipeline.run_chunk(State(), np.zeros(30 * SR, np.float32), chunk, PRESETS["fast"], None,
                                      pipeline.Features(None), numpy_features=False)
    assert [(s.start, s.end) for s in segs] == [(10.5, 12.0), (20.1, 21.9)]
    total = pipeline.sum_timings([native, native])
    assert total["total_ms"] == 14.0 and total["n_encode"] == 2
    t = pipeline.timings(10.0, total, 1.0, 20.0, 4, 5.0, chunks=2, workers=2)
    assert t["real_time_factor"] == 0.002 and t["native_ms"] == 14.0 and t["chunks"] == 2


def test_a_clip_is_decoded_with_the_same_margins_around_its_speech_whatever_its_silence():
    rng = np.random.default_rng(7)
    speech = (rng.standard_normal(3 * SR) * 0.1).astype(np.float32)
    speech[0] = speech[-1] = 0.2  # loud from its first sample to its last
    m = int(pipeline.MARGIN_S * SR)
    opts = PRESETS["accurate"]
    seen = []
    for before, after in ((0, 0), (2 * SR, 2 * SR), (m, m), (m + 37, 11), (5, 3 * SR + 1)):
        clip = np.concatenate([np.zeros(before, np.float32), speech, np.zeros(after, np.float32)])
        audio, to_clip = pipeline.around_speech(clip, opts)
        seen.append(audio)
        assert np.array_equal(audio, seen[0])  # the same samples decoded for every copy
        if (before, after) == (m, m):
            assert to_clip is None and audio is clip  # already so: the clip itself
            continue
        # times map back into the clip: the speech's start and end where they are in it
        assert to_clip(MS(m)) == round(before / SR, 3)
        assert to_clip(MS(m + speech.size)) == round((before + speech.size) / SR, 3)
        assert to_clip(0.0) == round(max(0, before - m) / SR, 3)  # made-up silence: the clip's edge
        assert to_clip(audio.size / SR + 1.0) <= clip.size / SR
    assert seen[0].size == speech.size + 2 * m
    # quiet audio before the speech counts as silence; -50 dB below the peak does not
    quiet = np.concatenate([np.full(SR, 0.0005, np.float32), speech])
    assert pipeline.around_speech(quiet, opts)[0].size == speech.size + 2 * m
    noise = np.concatenate([np.full(SR, 0.01, np.float32), speech])
    assert pipeline.around_speech(noise, opts)[0].size == noise.size + 2 * m
    # left as they are: silence, runs that read the clip's own times, audio longer than a window
    silent = np.zeros(SR, np.float32)
    assert pipeline.around_speech(silent, opts) == (silent, None)
    for o in (opts.replace(offset_ms=500), opts.replace(duration_ms=500), opts.replace(prefix="Hello"),
              opts.replace(audio_ctx=512), opts.replace(speech_only=True), opts.replace(window_start_limit_ms=900)):
        assert pipeline.around_speech(clip, o)[1] is None
    long = np.concatenate([np.zeros(2 * SR, np.float32), np.tile(speech, 10)])
    assert pipeline.around_speech(long, opts)[1] is None
    edge = np.tile(speech, 10)[: int(29.5 * SR)]  # 29.5 s of speech: margins would make it longer than 30 s
    assert pipeline.around_speech(edge, opts)[1] is None


def test_token_times_whisper_cpp_did_not_compute_stay_unknown_in_the_clip():
    from whisperx_native.vad import TimeMap, remap_segment

    toks = [RawToken(10, b" Hi", 0.9, -0.1, -0.01, -0.01, None, None),
            RawToken(11, b" there", 0.8, -0.2, 0.5, 1.0, None, 0.7)]
    seg = remap_segment(_raw(0.0, 1.0, " Hi there", toks), TimeMap([(0.0, 2.0)]))
    assert [(t.t0, t.t1, t.dtw_end) for t in seg.tokens] == [(-0.01, -0.01, None), (2.5, 3.0, 2.7)]
    assert (seg.t0, seg.t1) == (2.0, 3.0)


def MS(samples: int) -> float:
    return samples / SR


# --------------------------------------------------------------------------- the engine's pool rules
class _State:
    def __init__(self):
        self.generation, self.closed, self.cancels = 0, False, []

    def claim(self):
        self.generation += 1
        return self.generation

    def cancel(self, generation=None):
        self.cancels.append(generation)

    def close(self):
        self.closed = True


class _Ctx:
    def new_state(self):
        return _State()


def test_pool_keeps_full_context_runs_off_trimmed_states():
    pool = StatePool(_Ctx(), max_idle=2)
    a, b = pool.acquire(True), pool.acquire(True)
    pool.release(a, trimmed=True)
    pool.release(b)
    assert pool.acquire(True) is b  # a ran a trimmed context: never for a full one
    assert pool.acquire(False) is a and a.generation == 1  # claimed for its new owner
    pool.release(a, trimmed=True)
    pool.release(b)
    assert pool.acquire(True) is b
    c = pool.acquire(True)  # a new one: the idle one is trimmed
    assert c not in (a, b)
    pool.release(b)
    pool.release(c)  # three idle, two kept: the trimmed one goes first
    assert a.closed and not b.closed and len(pool.idle) == 2
    pool.close()
    assert b.closed and c.closed and pool.closed
    with pytest.raises(wn.ClosedError):
        pool.acquire()


def test_group_cancels_with_each_owners_generation():
    pool = StatePool(_Ctx())
    st = pool.acquire()
    group = StateGroup()
    group.add(st)
    group.cancel()
    assert st.cancels == [st.generation] and group.cancelled
    late = pool.acquire()
    group.add(late)  # a state added after the cancel is cancelled at once
    assert late.cancels == [late.generation]


# --------------------------------------------------------------------------- the layers
def _package_imports(module) -> set:
    """The package modules ``module`` imports (relative imports, first name after the dots)."""
    tree = ast.parse(Path(module.__file__).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            found.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
    return found


def test_the_engine_owns_native_state_and_decides_nothing():
    from whisperx_native import engine

    assert _package_imports(engine) <= {"_native", "errors", "vad"}  # no options, threads, words
    assert "vad.chunks" not in Path(engine.__file__).read_text()  # the VAD's model file only (vad.silero)


def test_the_pipeline_creates_no_native_object():
    tree = ast.parse(Path(pipeline.__file__).read_text())
    calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert not calls & {"Context", "State", "VadContext", "new_state", "claim"}
    assert "load_vad" not in Path(pipeline.__file__).read_text()
    assert "engine" not in _package_imports(pipeline) and "model" not in _package_imports(pipeline)
