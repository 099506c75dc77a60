"""Our patches to the pinned whisper.cpp (vendor/patches/) are in the build and do their job.

- 0001 (flash attention converts K/V once per head) must not change results: the
  transcript is the same as without flash attention's tiled path (flash_attn=False).
- 0002 adds ``decode_threads``: a decoder on fewer threads than the encoder.
- 0003 re-seeds decoder 0: beam search on a reused state gives the same text as on a
  fresh one (before it, three calls on one state gave three different punctuations).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import whisperx_native as wn
from whisperx_native import _native
from _util import normalize

REPO = Path(__file__).resolve().parents[1]


def _fetch_module():
    spec = importlib.util.spec_from_file_location("fetch_whisper_cpp", REPO / "vendor" / "fetch_whisper_cpp.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_vendored_tree_carries_every_patch() -> None:
    fetch = _fetch_module()
    assert fetch.PATCHES, "vendor/patches/ is empty"
    stamp = (fetch.DEST / fetch.STAMP).read_text()
    assert stamp == fetch.expected_stamp()
    for p in fetch.PATCHES:
        assert p.name in stamp
    assert "n_threads_decode" in (fetch.DEST / "include" / "whisper.h").read_text()


def test_beam_search_does_not_depend_on_the_state_history(tiny_en_ggml, jfk_samples) -> None:
    with wn.Model(tiny_en_ggml, n_threads=2, max_idle_states=1, adapt_threads=False) as reused:
        texts = [reused.transcribe(jfk_samples, language="en").text for _ in range(4)]
    with wn.Model(tiny_en_ggml, n_threads=2, max_idle_states=0, adapt_threads=False) as fresh:
        fresh_text = fresh.transcribe(jfk_samples, language="en").text
    assert texts == [fresh_text] * 4


def test_sampling_fallback_does_not_depend_on_the_state_history(tiny_en_ggml, jfk_samples) -> None:
    """Temperature > 0 samples from decoder 0's generator too (best_of 1: decoder 0 only)."""
    opts = dict(language="en", beam_size=1, best_of=1, temperature=0.8, temperature_increment=0.0)
    with wn.Model(tiny_en_ggml, n_threads=1, max_idle_states=1) as reused:
        texts = [reused.transcribe(jfk_samples, **opts).text for _ in range(3)]
    with wn.Model(tiny_en_ggml, n_threads=1, max_idle_states=0) as fresh:
        fresh_texts = [fresh.transcribe(jfk_samples, **opts).text for _ in range(2)]
    assert texts == [fresh_texts[0]] * 3 and fresh_texts[1] == fresh_texts[0]


def test_decode_threads(tiny_en_ggml, jfk_samples) -> None:
    with wn.Model(tiny_en_ggml, n_threads=2, adapt_threads=False) as m:
        both = m.transcribe(jfk_samples, preset="fast", language="en")
        one = m.transcribe(jfk_samples, preset="fast", language="en", decode_threads=1)
        assert normalize(one.text) == normalize(both.text)
        assert "ask not what your country can do for you" in normalize(one.text)
        for bad in (-1, 3):
            with pytest.raises(ValueError, match="decode_threads"):
                m.transcribe(jfk_samples, preset="fast", language="en", decode_threads=bad)


def test_flash_attention_path_gives_the_same_transcript(tiny_en_ggml, long_samples) -> None:
    """Two windows, 1500 queries each: the encoder's self-attention takes the tiled path."""
    texts = []
    for fa in (True, False):
        with wn.Model(tiny_en_ggml, n_threads=2, flash_attn=fa, adapt_threads=False) as m:
            texts.append(normalize(m.transcribe(long_samples, preset="fast", language="en").text))
    assert texts[0] == texts[1]
    assert texts[0].count("ask not what your country can do for you") == 4


def test_decoder_buffer_holds_only_the_rows_read(tiny_en_ggml) -> None:
    # 0008: 1.8.5 reserved logits for every prompt row (448 x 51864 floats = 93 MB, 95.9 MB
    # measured for tiny.en); one row per decoder plus the sot row is 6.4 MB. The decoder's
    # graph shares the state's one compute buffer (0016), the conv graph's 12.1 MB (0027).
    with wn._native.Context(str(tiny_en_ggml)) as ctx, ctx.new_state() as st:
        assert st.memory()["compute_buffer"] < 12_500_000


def test_a_fresh_state_holds_little_of_its_buffers(tiny_en_ggml) -> None:
    # 0027: a scheduler's graph metadata (1.6 MB) is no longer zero-filled, so a state that
    # has not run holds the encoder's input and output it clears and a few small vectors;
    # its caches and compute buffer become resident where a run writes them. Measured: 2.9 MB
    # a state with the editable build, 3.4 with the wheel .ci/run builds (each the same on
    # every run); before 0027 1.4 MB more (4.3). A fresh interpreter: in this one, earlier
    # tests' freed heap and threads move RSS while it is read.
    import json

    from _util import run_python

    proc = run_python(f"""
    import json, psutil
    from whisperx_native import _native
    proc = psutil.Process()
    with _native.Context({str(tiny_en_ggml)!r}) as ctx:
        ctx.new_state().close()  # one-time allocations of the first state
        rss0 = proc.memory_info().rss
        states = [ctx.new_state() for _ in range(4)]
        per_state = (proc.memory_info().rss - rss0) / len(states)
        mem = states[0].memory()
        for st in states:
            st.close()
    print(json.dumps(dict(per_state=per_state, mem=mem)))
    """)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    per_state, mem = m["per_state"], m["mem"]
    assert per_state <= mem["encoder_io_size"] + 1_500_000, (per_state, mem)


def test_one_compute_buffer_serves_every_graph_of_a_state(tiny_en_ggml, long_samples) -> None:
    # 0016: the conv, encoder, cross and decoder graphs share one compute buffer, planned
    # afresh when the kind of graph changes, with the encoder's input and output beside it
    # (tiny.en: 17.7 + 2.3 MB instead of 13.2 + 17.7 + 3.9 + 6.4). A state that ran every
    # kind of graph at other sizes (a trimmed context, greedy, beams, the alignment pass of
    # word times) gives what a fresh state gives, to the probability and the word time.
    clip = long_samples[16000 * 2:16000 * 30]
    opts = wn.DecodeOptions(n_threads=2, beam_size=5, word_timestamps=True)

    def record(segs):
        return [(s.t0, s.t1, s.text, tuple((t.id, round(t.p, 6), t.dtw_start, t.dtw_end) for t in s.tokens or ()))
                for s in segs]

    with _native.Context(str(tiny_en_ggml), alignment_heads="tiny.en") as ctx:
        with ctx.new_state() as fresh:
            mem = fresh.memory()
            expected = record(fresh.full(clip, opts)["segments"])
        assert not any(k.startswith("compute_buffer_") for k in mem)
        assert mem["compute_buffer"] < 20_000_000
        # the encoder's input/output, f32, and the f16 zeros that pad its K and V (patch 0033)
        assert abs(mem["encoder_io_size"] - (4 * 384 * 1500 + 2 * 384 * 255)) <= 10_000  # the log rounds to 10 kB
        with ctx.new_state() as st:
            st.full(long_samples[16000 * 40:16000 * 44], opts.replace(audio_ctx=256, beam_size=1,
                                                                      word_timestamps=False))
            st.full(long_samples[16000 * 50:16000 * 62], opts.replace(audio_ctx=768))
            st.full(long_samples[16000 * 70:16000 * 75], opts.replace(beam_size=1))
            assert record(st.full(clip, opts)["segments"]) == expected
    assert len(expected) >= 2 and sum(len(r[3]) for r in expected) > 40
    assert all(t[2] is not None for r in expected for t in r[3] if t[0] < 50256)  # word times came out


def test_text_prompt_does_not_hide_no_speech(tiny_en_ggml) -> None:
    # 0008: with a text prompt, 1.8.5 read no-speech from a logits row it never computed
    # (stale data, p ~ 0). Silence must look like silence with or without a prompt: keep
    # the window (logprob threshold off) and compare the probabilities reported.
    silence = np.zeros(16000 * 10, np.float32)
    model = wn.Model(str(tiny_en_ggml))
    probs = []
    for prompt in (None, "And so my fellow Americans, ask not what your country can do for you."):
        result = model.transcribe(silence, initial_prompt=prompt, vad=False, logprob_threshold=-50.0, beam_size=1)
        assert result.segments
        probs.append(result.segments[0].no_speech_prob)
    assert min(probs) > 0.5
    assert abs(probs[0] - probs[1]) < 0.2


def test_word_times_with_flash_attention(tiny_en_ggml, jfk_samples) -> None:
    # 0007: 1.8.5 switched DTW off whenever flash attention was on; the times must be
    # the same with it on and off, ordered, and inside the audio.
    def times(flash):
        with wn._native.Context(str(tiny_en_ggml), flash_attn=flash, alignment_heads="tiny.en") as ctx, \
                ctx.new_state() as st:
            raw = st.full(jfk_samples, wn.DecodeOptions(word_timestamps=True, beam_size=1))
        return [(t.id, t.dtw_start, t.dtw_end) for s in raw["segments"] for t in s.tokens if t.id < 50256]

    on, off = times(True), times(False)
    assert [t[0] for t in on] == [t[0] for t in off]
    # f16 scores vs the plain path's: the same frame or one or two beside it; the end of
    # text (the last token's end) is the least sharp
    diffs = [abs(a - b) for (_, *x), (_, *y) in zip(on, off) for a, b in zip(x, y)]
    assert max(diffs) <= 0.2 and sum(d <= 0.04 for d in diffs) >= 0.9 * len(diffs)
    starts = [t[1] for t in on]
    assert starts == sorted(starts)
    assert all(0 <= t0 <= t1 <= jfk_samples.size / 16000 + 0.02 for _, t0, t1 in on)


def test_self_attention_cache_for_beams_holds_a_window_worst_case(tiny_en_ggml) -> None:
    # 0010: the cache for 8 beams is the longest prompt plus one cell per beam per step
    # (2048 cells, 12.6 MB for tiny.en), not (8 + 2) x 512 cells; the longest prompt and
    # every step of 8 beams over dense speech fit in it, window after window.
    from whisperx_native.models.registry import kv_self_cells

    speech = wn.load_audio(Path(__file__).parent / "data" / "long_speech.ogg")[: 16000 * 65]
    prompt = " ".join(["the quick brown fox jumps over the lazy dog"] * 40)  # > 224 tokens: cut to the most
    with wn._native.Context(str(tiny_en_ggml)) as ctx, ctx.new_state() as st:
        base = st.memory()["kv_self_size"]
        raw = st.full(speech, wn.DecodeOptions(beam_size=8, initial_prompt=prompt, condition_on_previous_text=True,
                                               max_tokens=0, n_threads=2))
        assert len(raw["segments"]) > 3
        assert st.memory()["kv_self_size"] == base * kv_self_cells(448, 8) // 512 == base * 4


def test_q8_0_attention_caches(tiny_en_ggml, jfk_samples, long_samples) -> None:
    # 0014: the self- and cross-attention caches in q8_0 (34 bytes per 32 values, f16 64):
    # the words of f16, word times from the q8_0 K, identical results for 1 and 2 threads.
    from whisperx_native.models import registry

    def run(kv, audio, n_threads=2, **opts):
        with _native.Context(str(tiny_en_ggml), k_type=kv[0], v_type=kv[1], alignment_heads="tiny.en") as ctx, \
                ctx.new_state() as st:
            raw = st.full(audio, wn.DecodeOptions(n_threads=n_threads, **opts))
            return raw["segments"], st.memory()

    f16, mem16 = run(("f16", "f16"), jfk_samples, word_timestamps=True)
    q8, mem8 = run(("q8_0", "q8_0"), jfk_samples, word_timestamps=True)
    for part in ("kv_self_size", "kv_cross_size"):
        assert mem8[part] == pytest.approx(mem16[part] * 34 / 64, rel=0.01)  # the log rounds to 10 kB
    k_only = run(("q8_0", "f16"), jfk_samples[:16000 * 3])[1]["kv_cross_size"]
    assert k_only == pytest.approx(mem16["kv_cross_size"] * (34 + 64) / 128, rel=0.01)
    est = registry.get("tiny.en").memory()
    est8 = registry.estimate_memory("tiny.en", kv_type=("q8_0", "q8_0"))
    assert abs(est8.kv_cross - mem8["kv_cross_size"]) <= 10_000 and abs(est.kv_cross - mem16["kv_cross_size"]) <= 10_000
    words = lambda segs: normalize(" ".join(s.text for s in segs))  # noqa: E731
    assert words(q8) == words(f16)
    times8 = [(t.dtw_start, t.dtw_end) for s in q8 for t in s.tokens if t.id < 50256]
    times16 = [(t.dtw_start, t.dtw_end) for s in f16 for t in s.tokens if t.id < 50256]
    assert len(times8) == len(times16) and max(abs(a - b) for x, y in zip(times8, times16) for a, b in zip(x, y)) <= 0.1
    # beam search over two windows: the decoder's self-attention reads q8_0 cells too
    one = run(("q8_0", "q8_0"), long_samples[:16000 * 50], n_threads=1, beam_size=5)[0]
    two = run(("q8_0", "q8_0"), long_samples[:16000 * 50], n_threads=2, beam_size=5)[0]
    assert [(s.t0, s.t1, s.text) for s in one] == [(s.t0, s.t1, s.text) for s in two]
    assert normalize(" ".join(s.text for s in one)).count("ask not what your country can do for you") >= 1


def test_q8_0_caches_are_checked(tiny_en_ggml) -> None:
    with pytest.raises(wn.OptionError, match="flash_attn"):
        _native.Context(str(tiny_en_ggml), flash_attn=False, v_type="q8_0")
    with pytest.raises(wn.OptionError, match="k_type"):
        _native.Context(str(tiny_en_ggml), k_type="q4_0")
    with pytest.raises(wn.OptionError):
        wn.Model(str(tiny_en_ggml), kv_type=5)
    with wn.Model(str(tiny_en_ggml), flash_attn=False) as m:
        assert m.kv_type == ("f16", "f16")  # auto: only flash attention reads q8_0
    with wn.Model(str(tiny_en_ggml)) as m:
        assert m.kv_type == ("f16", "f16")  # auto: tiny's caches are small, q8_0 would cost speed
    from whisperx_native import pipeline
    from whisperx_native.models import registry

    for name, kv in (("tiny.en", "f16"), ("base", "f16"), ("small.en", "q8_0"), ("medium", "q8_0")):
        hp = registry.get(name).hparams
        assert pipeline.kv_type_for("auto", use_gpu=True, flash_attn=True, hp=hp) == (kv, kv), name
        assert pipeline.kv_type_for("auto", use_gpu=True, flash_attn=False, hp=hp) == ("f16", "f16")


def test_a_trimmed_run_leaves_nothing_for_the_next_full_one(tiny_en_ggml, long_samples) -> None:
    # 0015: a trimmed audio_ctx lays the cross cache's layers out at another stride and left
    # its K/V where a full-length run reads padding; now that padding is zeroed every run.
    full = long_samples[:16000 * 28]
    opts = wn.DecodeOptions(n_threads=2, beam_size=1, temperature_increment=0.0)

    def record(segs):
        return [(s.t0, s.t1, s.text, tuple(round(t.p, 6) for t in s.tokens or ())) for s in segs]

    with _native.Context(str(tiny_en_ggml)) as ctx:
        with ctx.new_state() as fresh:
            expected = record(fresh.full(full, opts)["segments"])
        with ctx.new_state() as st:
            st.full(long_samples[16000 * 12:16000 * 15], opts.replace(audio_ctx=512))
            st.full(long_samples[16000 * 20:16000 * 40], opts.replace(audio_ctx=1280))
            assert record(st.full(full, opts)["segments"]) == expected
    assert len(expected) >= 2 and "ask not what your country" in normalize(" ".join(r[2] for r in expected))


@pytest.mark.parametrize("kv", ["f16", "q8_0"])
def test_clearing_the_written_cells_leaves_a_fresh_cache(tiny_en_ggml, jfk_samples, long_samples, kv) -> None:
    # 0020: the self-attention cache is zeroed only where the last window wrote (per layer,
    # its first cells). A short run after long beam and best-of windows, which wrote far
    # more cells, reads what a fresh state reads: the same tokens and probabilities.
    opts = wn.DecodeOptions(n_threads=2, beam_size=5)

    def record(segs):
        return [(s.t0, s.t1, s.text, tuple((t.id, round(t.p, 6)) for t in s.tokens or ())) for s in segs]

    with _native.Context(str(tiny_en_ggml), k_type=kv, v_type=kv) as ctx:
        with ctx.new_state() as fresh:
            expected = record(fresh.full(jfk_samples, opts)["segments"])
        with ctx.new_state() as st:
            st.full(long_samples[:16000 * 29], opts.replace(max_tokens=0))
            st.full(long_samples[16000 * 60:16000 * 89], opts.replace(beam_size=1, best_of=8, temperature=0.6,
                                                                     temperature_increment=0.0))
            assert record(st.full(jfk_samples, opts)["segments"]) == expected
    assert "ask not what your country" in normalize(" ".join(r[2] for r in expected))


def _sampled_run_on_a_fresh_state(tiny_en_ggml, seconds: float = 0.0, kv: str = "f16") -> dict:
    """A beam-5 run on a fresh state in a fresh interpreter: how far RSS rose during the run
    (a thread samples it every half millisecond while the run holds no GIL), what it left,
    the state's buffers, the segments' end and count, and a second run's text. The audio is
    jfk.wav, or ``seconds`` of it repeated with 1 s pauses (from its third second); the
    attention caches of type ``kv``."""
    import json

    from _util import JFK_WAV, run_python

    proc = run_python(f"""
    import json, threading, time
    import numpy as np
    import whisperx_native as wn
    from whisperx_native import _native
    from whisperx_native._heap import keep_mmap_threshold
    from whisperx_native.manager.memory import process_rss
    keep_mmap_threshold()  # as a Model does: freed vectors leave RSS, not glibc's heap
    audio = wn.load_audio({str(JFK_WAV)!r})
    if {seconds!r}:
        audio = np.concatenate([audio, np.zeros(16000, np.float32)] * 4)[16000 * 2:int(16000 * (2 + {seconds!r}))]
    opts = wn.DecodeOptions(n_threads=2, beam_size=5)
    peak, done = [0], threading.Event()
    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], process_rss())
            time.sleep(0.0005)
    with _native.Context({str(tiny_en_ggml)!r}, k_type={kv!r}, v_type={kv!r}) as ctx:
        with ctx.new_state() as st:
            st.full(audio[:16000], opts)  # the first run's one-time allocations
        with ctx.new_state() as st:
            rss0 = process_rss()
            t = threading.Thread(target=sample)
            t.start()
            segments = st.full(audio, opts)["segments"]
            done.set(); t.join()
            left = process_rss() - rss0
            again = st.full(audio, opts)["segments"]
            mem = st.memory()
    text = lambda segs: " ".join(s.text for s in segs)
    print(json.dumps(dict(rose=peak[0] - rss0, left=left, mem=mem, text=text(segments), again=text(again),
                          end=segments[-1].t1, n=len(segments))))
    """)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "ask not what your country" in normalize(m["text"]) and m["again"] == m["text"]
    return m


@pytest.mark.skipif(sys.platform != "linux", reason="patch 0028 hands pages back on Linux only (MADV_DONTNEED)")
def test_a_state_is_resident_for_the_graph_that_runs(tiny_en_ggml) -> None:
    # 0028: the conv and encoder graphs' compute memory and the encoder's input/output go back
    # to the kernel once the cross K/V are computed, the cross cache before the next encode: a
    # beam-5 run peaks at the cross cache, the decoder's part of the compute buffer and the
    # cells and vectors it writes, or at the encoder graph (tiny.en, jfk.wav), not at every
    # buffer's high-water mark at once.
    m = _sampled_run_on_a_fresh_state(tiny_en_ggml)
    mem = m["mem"]
    held_at_once = mem["kv_cross_size"] + mem["compute_buffer"] + mem["encoder_io_size"]
    assert m["rose"] <= held_at_once - mem["encoder_io_size"] - 1_000_000, m


@pytest.mark.skipif(sys.platform != "linux", reason="patch 0030 hands pages back on Linux only (MADV_DONTNEED)")
def test_a_state_between_runs_holds_its_results_not_its_working_memory(tiny_en_ggml) -> None:
    # 0030: after whisper_full the caches and the compute buffer go back to the kernel and the
    # decoders' vocabulary-sized vectors, the host logits and the encoder's input copy are
    # freed; what stays is the state's mel and the results (tiny.en, jfk.wav: 0.9 MB measured;
    # 18 MB before, the cross cache, the decoder's compute memory and those vectors). The
    # next run on the state gives the same text.
    m = _sampled_run_on_a_fresh_state(tiny_en_ggml)
    assert m["left"] < 2_500_000, m


@pytest.mark.skipif(sys.platform != "linux", reason="patches 0028 and 0031 hand pages back on Linux only")
def test_a_windows_encoder_runs_beside_nothing_of_the_decoding(tiny_en_ggml) -> None:
    # 0031: a run peaks at a window's encoder graph, and nothing of the decoding is resident
    # there: not the decoders' vocabulary-sized vectors (sized where first written), not the
    # last window's (freed before each encode), not the staging copy of the mel, not the conv
    # graph's pages. 40 s at beam 5 (two windows), q8_0 caches so that the decoder's phase is
    # lower: tiny.en rose 14.5 MB (16.5 before patch 0033's K and V in the graph, 22.9 on the 0030 build).
    m = _sampled_run_on_a_fresh_state(tiny_en_ggml, seconds=40, kv="q8_0")
    mem = m["mem"]
    assert m["end"] > 30 and m["n"] >= 4, m  # a second window was decoded
    assert m["rose"] <= mem["compute_buffer"] + mem["encoder_io_size"] + 1_500_000, m


def test_the_encoders_k_and_v_are_tensors_of_its_graph(tiny_en_ggml, tmp_path) -> None:
    # 0033: on the CPU a layer's K and V (f16, padded with zero rows to a multiple of 256
    # positions) are tensors of the encoder's graph, placed where the layer's dead tensors
    # were, instead of a buffer of the state's own resident through every encoder (tiny:
    # 2.4 MB, small: 4.7 MB). small's encoder graph, its largest, grew 21.17 -> 21.28 MB.
    # The run above (test_a_windows_encoder_runs_beside_nothing_of_the_decoding) bounds what
    # an encoder holds without that buffer; the numbers read are the same (the README's
    # bit-identity check).
    from _synthetic import write_synthetic

    from whisperx_native.models import registry

    small = write_synthetic(tmp_path / "small-q4_0.bin", "small", "q4_0")
    for path, arch in ((tiny_en_ggml, "tiny"), (small, "small")):
        with _native.Context(str(path)) as ctx, ctx.new_state() as st:
            mem = st.memory()
        assert "kv_pad_size" not in mem, mem
        need = registry.estimate_memory(arch).compute
        assert abs(mem["compute_buffer"] - max(need.values())) <= 10_000, (arch, mem)  # the log rounds to 10 kB
    assert need["encode"] == max(need.values()) <= 21_170_000 + 200_000


@pytest.mark.parametrize("type_name", ["q8_0", "q4_0"])  # tinyBLAS_Q0 types
def test_a_products_columns_do_not_depend_on_how_many_are_computed_together(type_name) -> None:
    # 0017: five columns (a beam of five) go through one 4x5 tile pass instead of 4 + 1.
    # Each column must be what it is alone, bit for bit, on any thread count, the rows
    # left over from whole 4-row tiles included (a beam's logits do not depend on how
    # many beams are alive).
    from whisperx_native.models.ggml_file import ggml_type

    type_id = ggml_type(type_name).id
    rng = np.random.default_rng(17)
    rows, k = 4 * 13 + 3, 384
    weights = rng.standard_normal((rows, k), dtype=np.float32)
    block, size, _ = _native._core.quant_type_info(type_id)
    q = np.zeros(rows * k // block * size, dtype=np.uint8)
    _native._core.quantize_rows(type_id, weights, q)
    x = rng.standard_normal((5, k), dtype=np.float32)

    alone = np.concatenate([_native._core.mul_mat(type_id, q, rows, x[j:j + 1]) for j in range(5)])
    ref = x @ weights.T  # the product, up to the weights' quantization error
    assert np.linalg.norm(alone - ref) / np.linalg.norm(ref) < {"q8_0": 0.06, "q4_0": 0.15}[type_name]
    for n_threads in (1, 2, 3):
        five = _native._core.mul_mat(type_id, q, rows, x, n_threads=n_threads)
        four_and_one = np.concatenate([_native._core.mul_mat(type_id, q, rows, x[:4], n_threads=n_threads),
                                       _native._core.mul_mat(type_id, q, rows, x[4:], n_threads=n_threads)])
        assert np.array_equal(five, alone) and np.array_equal(four_and_one, alone)


@pytest.mark.parametrize("type_name", ["f16", "bf16", "q8_0", "q5_0"])  # the encoders' weight types
def test_a_products_rows_do_not_depend_on_the_block_that_holds_them(type_name, tiny_en_ggml) -> None:
    # 0021: the encoder's feed-forward network runs over its rows in four blocks; each
    # output row must be what the whole product gives it, bit for bit, on any thread count.
    # And the network no longer sizes the state's compute buffer: the conv graph does.
    from whisperx_native.models import registry
    from whisperx_native.models.ggml_file import ggml_type

    type_id = ggml_type(type_name).id
    rng = np.random.default_rng(21)
    rows, k, n = 4 * 384, 384, 1500  # tiny's first layer: 1500 positions, 384 -> 1536
    weights = rng.standard_normal((rows, k), dtype=np.float32)
    if type_name == "f16":
        q = weights.astype(np.float16).view(np.uint8).ravel()
    elif type_name == "bf16":
        q = (weights.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).ravel()
    else:
        block, size, _ = _native._core.quant_type_info(type_id)
        q = np.zeros(rows * k // block * size, dtype=np.uint8)
        _native._core.quantize_rows(type_id, weights, q)
    x = rng.standard_normal((n, k), dtype=np.float32)
    for n_threads in (1, 2):
        whole = _native._core.mul_mat(type_id, q, rows, x, n_threads=n_threads)
        blocks = np.concatenate([_native._core.mul_mat(type_id, q, rows, x[r:r + 375], n_threads=n_threads)
                                 for r in range(0, n, 375)])
        assert np.array_equal(whole, blocks)
    with wn._native.Context(str(tiny_en_ggml)) as ctx, ctx.new_state() as st:
        need = registry.estimate_memory("tiny.en").compute
        assert need["encode"] < need["conv"]
        assert abs(st.memory()["compute_buffer"] - need["conv"]) <= 10_000  # the log rounds to 10 kB


def test_the_vocabulary_finds_every_token_by_its_text(tiny_en_ggml) -> None:
    # 0022: the vocabulary is a vector of texts by id and the ids sorted by text (binary
    # search) instead of two std::maps (7.5 MB of nodes). Every entry reads back as the file
    # stores it, and every one-word entry is found by its own text: a word's longest match
    # is the word (for a text stored twice, the larger id, as the map's last assignment).
    import re

    from whisperx_native.models.ggml_file import read_vocab

    tokens = read_vocab(tiny_en_ggml)
    last = {t: i for i, t in enumerate(tokens)}
    words = [(t.decode(), i) for t, i in last.items() if re.fullmatch(rb" ?[A-Za-z]+", t)]
    assert len(words) > 30000
    with _native.Context(str(tiny_en_ggml)) as ctx:
        assert [ctx.token_bytes(i) for i in range(len(tokens))] == [t.split(b"\0")[0] for t in tokens]  # C strings
        assert ctx.token_bytes(50257) == b"[_SOT_]" and ctx.token_bytes(ctx.n_vocab - 1) == b"[_TT_1500]"
        with pytest.raises(wn.OptionError):
            ctx.token_bytes(ctx.n_vocab)
        assert [(t, ctx.tokenize(t)) for t, i in words if ctx.tokenize(t) != [i]] == []
        text = " And so, my fellow Americans: ask not what your country can do for you!"
        assert b"".join(ctx.token_bytes(i) for i in ctx.tokenize(text)) == text.encode()


def test_threads_that_sleep_at_barriers_compute_what_one_thread_does(tiny_en_ggml, jfk_samples) -> None:
    # 0023: a thread waiting at a barrier spins a while, then sleeps until the last thread
    # arrives. Eight threads on this machine's two cores wait long at every node, so most
    # waits end asleep: the products and a whole transcription must be what one thread gives,
    # and nothing may hang (bench/busy_machine.py measures the time it saves).
    rng = np.random.default_rng(23)
    from whisperx_native.models.ggml_file import ggml_type

    type_id = ggml_type("q8_0").id
    block, size, _ = _native._core.quant_type_info(type_id)
    q = np.zeros(1536 * 384 // block * size, dtype=np.uint8)
    _native._core.quantize_rows(type_id, rng.standard_normal((1536, 384), dtype=np.float32), q)
    x = rng.standard_normal((300, 384), dtype=np.float32)
    one = _native._core.mul_mat(type_id, q, 1536, x, n_threads=1)
    for _ in range(20):
        assert np.array_equal(_native._core.mul_mat(type_id, q, 1536, x, n_threads=8), one)
    opts = wn.DecodeOptions(beam_size=5, language="en")
    with _native.Context(str(tiny_en_ggml)) as ctx, ctx.new_state() as st:
        texts = [[s.text for s in st.full(jfk_samples, opts.replace(n_threads=n))["segments"]] for n in (1, 8)]
    assert texts[0] == texts[1] and "ask not what your country" in normalize(" ".join(texts[0]))


def test_row_maxima_of_every_length_and_position() -> None:
    # 0018: ggml_vec_max_f32 (the row maximum of softmax and of the tiled flash attention,
    # the encoder's) takes sixteen lanes at a time. The largest value at each position of
    # rows of 1-70 values, the vector tail included: a maximum missed by a lane or the tail
    # overflows exp() (100 above the rest) and the row is not a softmax.
    rng = np.random.default_rng(18)
    for n in range(1, 71):
        x = rng.standard_normal((n, n)).astype(np.float32)
        x[np.arange(n), np.arange(n)] = 100.0  # row r's maximum at position r
        x[:, ::5] = np.where(np.eye(n, dtype=bool)[:, ::5], x[:, ::5], -np.inf)  # masked keys
        got = _native._core.soft_max(x)
        e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
        assert np.all(np.isfinite(got)), n
        assert np.allclose(got, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7), n


@pytest.mark.parametrize("beam_size", [1, 5])
def test_a_prefix_is_continued_not_transcribed_again(tiny_en_ggml, jfk_samples, beam_size) -> None:
    """0019: the first window's known text goes after the sot sequence; the decoder continues
    it. Timed (<|0.00|> text <|3.00|>), the first timestamp sampled is not before 3.00 s."""
    with wn.Model(tiny_en_ggml, n_threads=2, adapt_threads=False) as model:
        plain = model.transcribe(jfk_samples, language="en", beam_size=beam_size)
        assert "fellow americans" in normalize(plain.text)
        timed = model.transcribe(jfk_samples, language="en", beam_size=beam_size,
                                 prefix=((0.0, 3.0, " And so my fellow Americans,"),))
        text = normalize(timed.text)
        assert "fellow" not in text and "ask not what your country" in text, timed.text
        assert timed.segments[0].start >= 3.0
        said = model.transcribe(jfk_samples, language="en", beam_size=beam_size,
                                prefix="And so my fellow Americans, ask not")   # untimed, as openai-whisper's
        assert "fellow" not in normalize(said.text) and "what your country" in normalize(said.text), said.text


def test_a_prefix_is_for_the_first_window_only(tiny_en_ggml, jfk_samples) -> None:
    audio = np.concatenate([jfk_samples, np.zeros(16000 * 22, np.float32), jfk_samples])   # jfk again at 33 s
    with wn.Model(tiny_en_ggml, n_threads=2, adapt_threads=False) as model:
        r = model.transcribe(audio, language="en", prefix=((0.0, 3.0, " And so my fellow Americans,"),))
        assert normalize(r.text).count("fellow americans") == 1, r.text
        assert [s for s in r.segments if s.start >= 29 and "fellow" in s.text.lower()], r.segments


def test_a_prefix_too_long_for_the_room_keeps_its_last_texts(tiny_en_ggml, jfk_samples) -> None:
    # 60 timed texts of 6 tokens each: more than the 223 tokens of room, so whisper.cpp would
    # refuse them; the binding leaves out the earliest ones
    many = tuple((i * 0.05, i * 0.05 + 0.02, " one two three four") for i in range(60))
    with wn.Model(tiny_en_ggml, n_threads=2, adapt_threads=False) as model:
        r = model.transcribe(jfk_samples, language="en", beam_size=1, prefix=many)
        assert r.segments and r.segments[0].start >= many[-1][1] - 0.02
        with pytest.raises(wn.OptionError, match="vad=True"):
            model.transcribe(jfk_samples, language="en", vad=True, prefix="And so")
        for bad, err in ((((2.0, 1.0, "x"),), wn.OptionError), (((0.0, 31.0, "x"),), wn.OptionError),
                         (5, wn.OptionTypeError), (((0.0, 1.0),), wn.OptionTypeError),
                         (tuple((0.0, 0.0, "x") for _ in range(80)), wn.OptionError)):
            with pytest.raises(err):
                model.transcribe(jfk_samples, prefix=bad)


def test_gelu_sixteen_at_a_time_is_the_row_loop() -> None:
    # 0024: ggml's GELU (a lookup in its F16 table) takes sixteen values at a time. Every
    # number the table can be asked for, the midpoints between them (where rounding to F16
    # ties), the edges at +-10 and NaN must give what the one-at-a-time loop gives, bit for
    # bit: a one-value row never reaches the vector path.
    h = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
    h = h[np.isfinite(h)]
    s = np.sort(h)
    mid = ((s[1:].astype(np.float64) + s[:-1]) / 2).astype(np.float32)
    edges = np.nextafter(np.float32([-10, 10]), np.float32([[-np.inf], [np.inf]])).ravel()
    x = np.concatenate([h, mid, edges, np.float32([-10, 10, -10.5, 10.5, 0.0, -0.0, np.inf, -np.inf])])
    rng = np.random.default_rng(24)
    x = x[rng.permutation(x.size)]
    nan_at = x.size - 1000  # a NaN late in the row: the loop takes over from its block
    x = np.insert(x, nan_at, np.nan)
    one_at_a_time = _native._core.gelu(x.reshape(-1, 1)).ravel()
    for n_threads in (1, 2):
        row = _native._core.gelu(x.reshape(1, -1), n_threads=n_threads).ravel()
        assert np.array_equal(row.view(np.uint32), one_at_a_time.view(np.uint32))
    rows = _native._core.gelu(x[:nan_at - nan_at % 37].reshape(-1, 37))  # tails of 5 after two blocks
    assert np.array_equal(rows.ravel().view(np.uint32), one_at_a_time[:rows.size].view(np.uint32))
    fine = np.abs(x) < 9
    xf = x[fine].astype(np.float64)
    exact = 0.5 * xf * (1 + np.tanh(np.sqrt(2 / np.pi) * (xf + 0.044715 * xf ** 3)))
    assert np.allclose(one_at_a_time[fine], exact, rtol=2e-3, atol=2e-3)  # the table's F16 precision


def _attention(q, k, v, mask, scale):
    """Attention in float64, Q rounded to F16 where the kernel rounds it."""
    heads, kv_heads = q.shape[0], k.shape[0]
    k64, v64 = k.astype(np.float64), v.astype(np.float64)
    out = np.zeros((q.shape[1], heads, v.shape[2]))
    for h in range(heads):
        s = q[h].astype(np.float64) @ k64[h // (heads // kv_heads)].T * scale
        if mask is not None:
            s = s + mask.astype(np.float64)
        m = s.max(axis=1, keepdims=True)
        e = np.where(np.isfinite(m), np.exp(s - np.where(np.isfinite(m), m, 0)), 0.0)
        tot = e.sum(axis=1, keepdims=True)
        out[:, h] = np.divide(e @ v64[h // (heads // kv_heads)], tot, out=np.zeros((e.shape[0], v.shape[2])),
                              where=tot > 0)
    return out


@pytest.mark.parametrize("d", [64, 40])  # whisper's head size (the vector path); another
def test_flash_attention_of_decoder_rows(d) -> None:
    # 0025: the decoder's flash attention (F16 caches, a few rows) goes through the keys in
    # blocks of 256, every row of a head together, its exps taken per block and its values
    # summed in F32. Against float64 attention: block edges, a key masked everywhere, a
    # block masked for a row, a row with every key masked (zeros), grouped heads, more rows
    # than one group holds and the tiled path (64 rows and up). And a row's result must not
    # depend on the rows beside it or the thread count, bit for bit.
    rng = np.random.default_rng(25)
    for rows, n_kv, heads, kv_heads in ((1, 1, 1, 1), (5, 17, 3, 3), (5, 256, 2, 1), (9, 257, 2, 2),
                                        (5, 1500, 6, 6), (70, 300, 2, 2)):
        q = rng.standard_normal((heads, rows, d)).astype(np.float32)
        q16 = q.astype(np.float16).astype(np.float32) if rows < 64 else q
        k = rng.standard_normal((kv_heads, n_kv, d)).astype(np.float16)
        v = rng.standard_normal((kv_heads, n_kv, d)).astype(np.float16)
        mask = np.where(rng.random((rows, n_kv)) < 0.3, -np.inf, 0.0).astype(np.float16)
        mask[:, 0] = -np.inf
        if n_kv > 256:
            mask[0, :256] = -np.inf
        mask[-1] = -np.inf if rows > 1 else mask[-1]
        scale = 1 / np.sqrt(d)
        for m in (None, mask):
            got = _native._core.flash_attn(q, k.view(np.uint16), v.view(np.uint16),
                                           None if m is None else m.view(np.uint16), scale)
            ref = _attention(q16, k, v, m, scale)
            assert np.abs(got - ref).max() < 2e-3, (rows, n_kv, heads, m is None)
        if rows > 1:
            assert np.all(got[-1] == 0)  # every key masked
        if rows < 64:
            whole = [_native._core.flash_attn(q, k.view(np.uint16), v.view(np.uint16), mask.view(np.uint16), scale,
                                              n_threads=n) for n in (1, 2, 3)]
            alone = np.concatenate([_native._core.flash_attn(q[:, r:r + 1].copy(), k.view(np.uint16),
                                                             v.view(np.uint16), mask[r:r + 1].view(np.uint16),
                                                             scale) for r in range(rows)])
            for w in whole:
                assert np.array_equal(w, alone)
