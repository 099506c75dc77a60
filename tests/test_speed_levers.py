"""The speed levers of issue 7 do what they claim without changing results.

Speed itself is claimed in bench/ (pytest-benchmark, against peers in the same run);
here: numpy log-mel features give whisper.cpp the same input as its own FFT, the
bf16 model file works, the build has the kernels it asks for, and the fast preset
does not condition on the previous window.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import whisperx_native as wn
from whisperx_native import features
from whisperx_native.models import ggml_file
from whisperx_native.models.quantize import bf16_bits, quantize_model
from whisperx_native.options import PRESETS

JFK = "ask not what your country can do for you"


def _texts_both_ways(model: wn.Model, samples: np.ndarray, **opts):
    try:
        model.numpy_features = False
        native = model.transcribe(samples, **opts)
        model.numpy_features = True
        ours = model.transcribe(samples, **opts)
    finally:
        model.numpy_features = True
    return native, ours


def test_numpy_features_give_whisper_cpp_the_same_input(tiny, tiny_en_ggml, jfk_samples, long_samples) -> None:
    """Same segments, same text and the same token probabilities (to float rounding)
    whichever side computes the log-mel spectrogram, on one window and on two. The
    probabilities are compared with f16 attention caches: q8_0 caches (the CPU default,
    patch 0014) round the cross-attention's K and V to 8 bits, which turns a rounding-level
    difference of the input into a step of up to ~2e-2 in a probability (and can move a
    timestamp token): with them the words are compared."""
    with wn.Model(tiny_en_ggml, adapt_threads=False, kv_type="f16") as f16:
        for model, atol in ((f16, 2e-3), (tiny, None)):
            for samples in (jfk_samples, long_samples):
                native, ours = _texts_both_ways(model, samples, preset="fast", language="en")
                assert JFK in ours.text.lower()
                assert [s.text for s in ours.segments] == [s.text for s in native.segments]
                if atol is None:  # q8_0: a timestamp token can move with such a step; the words stay
                    continue
                assert [(s.start, s.end) for s in ours.segments] == [(s.start, s.end) for s in native.segments]
                p_native = [t.p for s in native.segments for t in s.tokens]
                p_ours = [t.p for s in ours.segments for t in s.tokens]
                assert len(p_native) == len(p_ours) > 10
                assert np.allclose(p_native, p_ours, atol=atol)


def test_numpy_features_shape_and_padding(tiny) -> None:
    filters = ggml_file.read_mel_filters(tiny.path)
    assert filters.shape == (80, 201) and filters.dtype == np.float32
    x = np.random.default_rng(0).standard_normal(16000 * 3).astype(np.float32) * 0.1
    mel, frames = features.log_mel(x, filters)
    n_len, n_org = features.n_frames(x.size)
    assert mel.shape == (80, n_len) and mel.flags.c_contiguous and frames == n_org == 299
    assert n_len == 3300  # whisper.cpp pads 30 s of zeros after the audio
    # The padding is log10(1e-10) before normalisation, clamped at max - 8, like whisper.cpp.
    assert np.all(mel[:, -100:] == mel[:, -100:].min())
    assert mel.max() - mel.min() <= 2.0 + 1e-6
    with pytest.raises(ValueError):
        features.log_mel(x[:100], filters)


def test_numpy_features_do_not_depend_on_the_fft_batch(tiny, long_samples, monkeypatch) -> None:
    # The frames go through the FFT in small batches (features._CHUNK: a small heap in each
    # long-form worker); every frame is its own transform, so the batch changes nothing.
    filters = ggml_file.read_mel_filters(tiny.path)
    x = long_samples[: 16000 * 41 + 77]
    small, frames = features.log_mel(x, filters)
    assert features._CHUNK < frames  # several batches and a partial last one
    monkeypatch.setattr(features, "_CHUNK", 1 << 16)
    whole, frames_whole = features.log_mel(x, filters)
    assert frames == frames_whole and np.array_equal(small, whole)


def test_a_mel_handed_over_is_freed_before_the_run(tiny, jfk_samples) -> None:
    # A mel in a one-element list is handed over: State.full takes it out and lets it go once
    # whisper.cpp has copied it, so the caller's features are not resident beside the run
    # (a 30 s chunk: 1 MB of mel; pipeline.run_chunk drops its 2 MB of samples too). The run
    # reads the features only: its samples may be empty. Same result as the mel kept.
    import weakref

    st = tiny._engine.pool.acquire()
    try:
        opts = PRESETS["accurate"].replace(language="en", n_threads=1)
        mel, frames = features.log_mel(jfk_samples, ggml_file.read_mel_filters(tiny.path))
        kept = st.full(jfk_samples, opts, mel=mel, mel_frames=frames)
        box, gone = [mel], weakref.ref(mel)
        del mel
        freed_during_run = []
        handed = st.full(np.zeros(0, np.float32), opts, mel=box, mel_frames=frames,
                         on_progress=lambda p: freed_during_run.append(gone() is None))
        assert box == [] and gone() is None and freed_during_run and all(freed_during_run)
        assert [(s.t0, s.t1, s.text) for s in handed["segments"]] == [(s.t0, s.t1, s.text) for s in kept["segments"]]
        with pytest.raises(ValueError, match="a list holding one array"):
            st.full(jfk_samples, opts, mel=[], mel_frames=frames)
    finally:
        tiny._engine.pool.release(st)


def test_a_mel_without_its_padding_reads_the_same(tiny, jfk_samples, long_samples) -> None:
    # 0032: whisper_set_mel fills the frames past the mel's end with its least value (the
    # floor that padded silence holds) instead of zero, so the features go without their 30 s
    # of padding but one frame (pipeline.Features: half of a 30 s chunk's mel, which the state
    # holds through the run). Every window reads the same numbers: the same tokens, bit for
    # bit, on a clip (one window, language detection on a multilingual-style first window)
    # and on 48 s (a second window that starts near the end).
    filters = ggml_file.read_mel_filters(tiny.path)
    st = tiny._engine.pool.acquire()
    try:
        opts = PRESETS["accurate"].replace(language="en", n_threads=2)
        ends = []
        for x in (jfk_samples, long_samples, jfk_samples[: 16000 * 3]):
            whole, frames = features.log_mel(x, filters)
            short, frames_short = features.log_mel(x, filters, pad_30s=False)
            assert frames_short == frames and short.shape[1] <= frames + 4 < whole.shape[1]
            assert np.array_equal(short, whole[:, :short.shape[1]]) and short[:, -1].max() == whole.min()
            runs = [st.full(np.zeros(0, np.float32), opts, mel=m, mel_frames=frames)["segments"]
                    for m in (whole, short)]
            a, b = ([(s.t0, s.t1, s.text, [(t.id, t.p, t.logprob) for t in s.tokens]) for s in r] for r in runs)
            assert a == b and a
            ends.append(a[-1][1])
        assert ends[1] > 30.0  # a second window, which reads past the mel's end
    finally:
        tiny._engine.pool.release(st)


def test_precomputed_mel_is_checked(tiny, jfk_samples) -> None:
    st = tiny._engine.pool.acquire()
    try:
        opts = PRESETS["fast"].replace(language="en", n_threads=1)
        mel, frames = features.log_mel(jfk_samples, ggml_file.read_mel_filters(tiny.path))
        with pytest.raises(ValueError, match="mel_frames"):
            st.full(jfk_samples, opts, mel=mel, mel_frames=mel.shape[1] + 1)
        with pytest.raises(ValueError, match="bands"):
            st.full(jfk_samples, opts, mel=np.ascontiguousarray(mel[:40]), mel_frames=frames)
        with pytest.raises(ValueError):
            st.full(jfk_samples, opts, mel=mel.astype(np.float64), mel_frames=frames)
        with pytest.raises(ValueError, match="token timestamps"):
            st.full(jfk_samples, opts.replace(token_timestamps=True), mel=mel, mel_frames=frames)
        raw = st.full(jfk_samples, opts, mel=mel, mel_frames=frames)  # the state still works
        assert JFK in str(raw["segments"]).lower()
    finally:
        tiny._engine.pool.release(st)


def test_word_timestamps_still_use_whisper_cpps_features(tiny, jfk_samples) -> None:
    """Token timestamps read the signal energy whisper.cpp computes from the samples."""
    r = tiny.transcribe(jfk_samples, preset="fast", language="en", token_timestamps=True)
    assert JFK in r.text.lower() and any(s.words for s in r.segments)
    assert tiny._features.compute(jfk_samples, PRESETS["fast"].replace(token_timestamps=True))[0] is None


def test_bf16_model_file(tiny_en_ggml: Path, tmp_path: Path, jfk_samples) -> None:
    out = quantize_model(tiny_en_ggml, tmp_path / "ggml-tiny.en-bf16.bin", "bf16")
    info = ggml_file.validate(out)
    assert info.wtype.name == "bf16" and info.file_size < tiny_en_ggml.stat().st_size * 1.01
    with wn.Model(out, n_threads=2, adapt_threads=False) as m:
        r = m.transcribe(jfk_samples, preset="fast", language="en")
    assert JFK in r.text.lower()


def _mixed_file(tiny_en_ggml: Path, tmp_path: Path, name: str, encoder: str, decoder: str,
                embedding: "str | None" = None):
    """tiny.en quantized as the mixed type ``name``: every encoder matrix ``encoder``, every
    decoder and cross-attention matrix ``decoder`` (vendor/patches/0004), the token embedding
    ``embedding`` (vendor/patches/0029; default: the decoder's)."""
    embedding = embedding or decoder
    out = quantize_model(tiny_en_ggml, tmp_path / f"ggml-tiny.en-{name}.bin", name)
    info = ggml_file.validate(out)
    hp = info.hparams
    assert (info.wtype.name, hp.decoder_wtype.name, hp.embedding_wtype.name) == (encoder, decoder, embedding)
    assert hp.mixed == (decoder != encoder) and hp.own_embedding == (embedding != decoder)
    weights = [t for t in info.tensors if t.type.name not in ("f32", "f16")]
    emb = "decoder.token_embedding.weight"
    assert {t.type.name for t in weights if t.name.startswith("encoder.")} == {encoder}
    assert {t.type.name for t in weights if t.name.startswith("decoder.") and t.name != emb} == {decoder}
    assert any(t.name == emb and t.type.name == embedding for t in info.tensors)
    return out, info


def test_bf16_encoder_q8_0_decoder_file(tiny_en_ggml: Path, tmp_path: Path, jfk_samples, long_samples) -> None:
    """tiny.en-bf16q8, in one file whisper.cpp loads and runs."""
    out, info = _mixed_file(tiny_en_ggml, tmp_path, "bf16q8", "bf16", "q8_0")
    assert info.file_size < tiny_en_ggml.stat().st_size * 0.7  # the 40 MB token embedding halved
    with wn.Model(out, n_threads=2, adapt_threads=False) as m:
        assert JFK in m.transcribe(jfk_samples, preset="fast", language="en").text.lower()
        assert m.transcribe(long_samples, preset="fast", language="en", decode_threads=1).text.lower().count(JFK) == 4
        assert JFK in m.transcribe(jfk_samples, language="en").text.lower()  # beam search too


def test_q5_0_encoder_q8_0_decoder_file(tiny_en_ggml: Path, tmp_path: Path, jfk_samples) -> None:
    """tiny.en-q5q8 (the memory budget's step after q8_0: manager/budget.py), smaller than q8_0's file."""
    from whisperx_native.models import registry

    out, info = _mixed_file(tiny_en_ggml, tmp_path, "q5q8", "q5_0", "q8_0")
    assert info.weight_bytes == registry.get("tiny.en-q5q8").weight_bytes < registry.get("tiny.en-q8_0").weight_bytes
    with wn.Model(out, n_threads=2, adapt_threads=False) as m:
        assert JFK in m.transcribe(jfk_samples, language="en").text.lower()


def test_q5_0_file_with_a_q8_0_token_embedding(tiny_en_ggml: Path, tmp_path: Path, jfk_samples) -> None:
    """tiny.en-q5e8 (the budget's step after q5q8): q5_0 everywhere but the token embedding, q8_0.
    whisper.cpp checks every tensor's size against the type it created it with, so a load that
    succeeds is patch 0029 reading the embedding's own type from the header."""
    from whisperx_native.models import registry

    out, info = _mixed_file(tiny_en_ggml, tmp_path, "q5e8", "q5_0", "q5_0", "q8_0")
    assert info.hparams.ftype == 8 + 1000 * 2 + 1_000_000 * (7 + 1)
    assert info.weight_bytes == registry.get("tiny.en-q5e8").weight_bytes < registry.get("tiny.en-q5q8").weight_bytes
    assert registry.get("tiny.en-q5e8").wtype == "q5_0+q5_0+q8_0"
    with wn.Model(out, n_threads=2, adapt_threads=False) as m:
        assert JFK in m.transcribe(jfk_samples, language="en").text.lower()  # beam search
        assert JFK in m.transcribe(jfk_samples, preset="fast", language="en").text.lower()


def test_an_embedding_type_that_is_the_decoders_is_refused() -> None:
    """A token embedding "of its own" that is the decoder's type: one meaning, one spelling."""
    hp = ggml_file.HParams(51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 8 + 2000 + 1_000_000 * (8 + 1))
    with pytest.raises(wn.ModelError, match="decoder's own type"):
        hp.check()
    with pytest.raises(wn.ModelError, match="unknown to ggml"):  # an embedding ftype ggml lacks
        ggml_file.HParams(51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 8 + 2000 + 1_000_000 * (31 + 1)).check()


def test_a_mixed_header_with_one_type_is_refused() -> None:
    """ftype 1 + 32 x (1 + 1) would say "f16 encoder, f16 decoder": one meaning, one spelling."""
    hp = ggml_file.HParams(51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1 + 32 * 2)
    with pytest.raises(wn.ModelError, match="encoder's own type"):
        hp.check()


def test_bf16_rounding_matches_ggml() -> None:
    """Round to nearest, ties to even, on the bit pattern (ggml_compute_fp32_to_bf16)."""
    x = np.array([1.0, -2.5, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, 1.0 + 2 ** -9, 65504.0], np.float32)
    bits = bf16_bits(x).view("<u2")
    back = (bits.astype(np.uint32) << 16).view(np.float32)
    assert back.tolist() == [1.0, -2.5, 1.0, 1.0 + 4 * 2 ** -8, 1.0, 65536.0]


def test_build_has_the_fast_kernels() -> None:
    info = wn.build_info()["system_info"]
    assert "LLAMAFILE = 1" in info  # tinyBLAS GEMM for the encoder
    assert "OPENMP = 1" not in info  # ggml's own thread pool: no spinning OpenMP workers


def test_fast_preset_does_not_condition_on_previous_text() -> None:
    assert PRESETS["fast"].condition_on_previous_text is False
    assert PRESETS["accurate"].condition_on_previous_text is True


def test_condition_on_previous_text_runs_both_ways(tiny, long_samples) -> None:
    a = tiny.transcribe(long_samples, preset="fast", language="en", condition_on_previous_text=True)
    b = tiny.transcribe(long_samples, preset="fast", language="en")
    assert a.text.lower().count("your country") >= 4 and b.text.lower().count("your country") >= 4


def test_full_context_run_after_a_trimmed_one_is_unchanged(tiny_en_ggml, jfk_samples, long_samples) -> None:
    """whisper.cpp reads 36 padding rows of K/V unmasked on a full 1500-position run; a
    trimmed run on the same state leaves data there. Full runs get a clean state."""
    with wn.Model(tiny_en_ggml, n_threads=2, adapt_threads=False) as m:
        first = m.transcribe(long_samples, preset="fast", language="en")
        short = m.transcribe(jfk_samples[:16000 * 4], preset="fast", language="en")  # trimmed audio_ctx
        assert JFK.split()[0] in short.text.lower()
        again = m.transcribe(long_samples, preset="fast", language="en")
        assert [s.text for s in again.segments] == [s.text for s in first.segments]
        p1 = [t.p for s in first.segments for t in s.tokens]
        p2 = [t.p for s in again.segments for t in s.tokens]
        assert np.allclose(p1, p2, atol=1e-4)
        assert len(m._engine.pool.idle) <= m.max_idle_states
