"""Long-form decoding: Silero VAD, chunks of at most one window, transcribed in parallel on
states of one model, times mapped back to the file (pipeline.py, engine.py, vad/chunks.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import jiwer
import numpy as np
import pytest

import whisperx_native as wn
from whisperx_native import _native
from whisperx_native.models.store import preferred_variant
from whisperx_native.vad import Chunk, TimeMap, plan_chunks
from _util import normalize

SR = wn.SAMPLE_RATE
DATA = Path(__file__).parent / "data"


# --------------------------------------------------------------------------- planning (no model)
def test_chunks_hold_at_most_one_window_in_order() -> None:
    segs = [(0.0, 5.0), (4.9, 12.0), (13.0, 40.0), (41.0, 45.0), (50.0, 79.0), (80.0, 80.5)]
    chunks = plan_chunks(segs, 100 * SR)
    flat = [p for c in chunks for p in c.pieces]
    assert flat == sorted(flat)
    assert all(a < b for a, b in flat)
    for c in chunks:
        joined = sum(b - a for a, b in c.pieces) + 0.1 * SR * (len(c.pieces) - 1)
        assert joined <= 30 * SR
    # overlapping segments merged; the 27 s segment and the 29 s one do not share a chunk
    assert flat[0] == (0, 12 * SR)
    assert len(chunks) == 4


def test_a_segment_longer_than_a_window_is_cut_into_equal_parts() -> None:
    chunks = plan_chunks([(1.0, 71.0)], 80 * SR)
    lengths = [b - a for c in chunks for a, b in c.pieces]
    assert len(lengths) == 3 and max(lengths) - min(lengths) <= 2
    assert sum(lengths) == 70 * SR


def test_time_map_stays_inside_the_pieces() -> None:
    c = Chunk(((2 * SR, 4 * SR), (10 * SR, 11 * SR)))
    audio, m = c.audio(np.arange(20 * SR, dtype=np.float32))
    assert audio.size == 3 * SR + int(0.1 * SR)
    assert m(0.0) == 2.0 and m(1.5) == 3.5
    assert m(2.05) == 4.0                 # in the gap: the end of the piece before it
    assert m(2.1) == 10.0 and m(2.6) == 10.5
    assert m(99.0) == 11.0                # past the end: never beyond the last piece
    assert c.time_map()(2.6) == m(2.6)
    assert TimeMap([(0.0, 5.0)])(1.0) == 6.0


def test_no_window_is_started_for_a_chunks_padding() -> None:
    c = Chunk(((2 * SR, 10 * SR), (12 * SR, 20 * SR)))
    assert c.joined_seconds == pytest.approx(16.1)
    # speech ends pad_s before the chunk does; under margin_s of speech is not worth a window
    assert c.window_start_limit_ms(0.4) == round((16.1 - 0.4 - 0.5) * 1000)
    assert c.window_start_limit_ms(0.4, margin_s=0.0) == 15700
    assert Chunk(((0, SR // 2),)).window_start_limit_ms(0.4) == 1  # never 0 (= no limit)


# --------------------------------------------------------------------------- real inference
@pytest.fixture(scope="module")
def speech():
    return wn.load_audio(DATA / "long_speech.ogg"), (DATA / "long_speech.txt").read_text()


def test_long_file_is_chunked_and_times_map_back(tiny, speech) -> None:
    audio, ref = speech
    seen = []
    r = tiny.transcribe(audio, segment_callback=seen.append)
    t = r.timings
    assert t["chunks"] > 1 and t["workers"] >= 1 and "vad_ms" in t
    assert [(s.start, s.end, s.text) for s in seen] == [(s.start, s.end, s.text) for s in r.segments]
    starts = [s.start for s in r.segments]
    assert starts == sorted(starts)
    assert all(0 <= s.start <= s.end <= audio.size / SR for s in r.segments)
    assert jiwer.wer(normalize(ref), normalize(r.text)) < 0.15


def test_parallel_chunks_give_what_one_worker_gives(tiny, speech) -> None:
    audio, _ = speech
    clip = audio[: 75 * SR]
    one = tiny.transcribe(clip, preset="fast", chunk_workers=1, n_threads=1)
    two = tiny.transcribe(clip, preset="fast", chunk_workers=2, n_threads=2)
    assert two.timings["workers"] == 2
    assert [(s.start, s.end, s.text) for s in one.segments] == [(s.start, s.end, s.text) for s in two.segments]


def test_vad_false_is_one_pass_and_short_clips_are_one_pass(tiny, speech, jfk_samples) -> None:
    audio, _ = speech
    assert "chunks" not in tiny.transcribe(audio[: 40 * SR], preset="fast", vad=False).timings
    assert "chunks" not in tiny.transcribe(jfk_samples, preset="fast").timings
    assert tiny.transcribe(jfk_samples, preset="fast", vad=True).timings["chunks"] == 1


def test_a_chunk_whose_text_ends_with_its_speech_is_encoded_once(tiny, jfk_samples) -> None:
    # patch 0011: three speeches far apart make two chunks; after each chunk's last timestamp
    # only its VAD padding is left, which used to be encoded again as a whole 30-s window
    gap = np.zeros(40 * SR, dtype=np.float32)
    audio = np.concatenate([jfk_samples, gap, jfk_samples, gap, jfk_samples])
    r = tiny.transcribe(audio)
    assert r.timings["chunks"] == 2 and r.timings["n_encode"] == 2
    assert normalize(r.text).count("country") == 6


def test_silence_gives_nothing(tiny) -> None:
    r = tiny.transcribe(np.zeros(45 * SR, dtype=np.float32))
    assert r.segments == [] and r.timings["chunks"] == 0


def test_cancel_stops_every_chunk_and_returns_the_states(tiny_en_ggml, speech) -> None:
    audio, _ = speech
    with wn.Model(tiny_en_ggml, n_threads=2, max_idle_states=2) as m:
        token = wn.CancelToken()
        started = threading.Event()
        box = {}

        def run():
            try:
                box["r"] = m.transcribe(audio, cancel_token=token, progress_callback=lambda p: started.set())
            except BaseException as exc:
                box["e"] = exc

        th = threading.Thread(target=run)
        th.start()
        assert started.wait(120)
        token.cancel()
        th.join(120)
        assert isinstance(box.get("e"), wn.Cancelled), box
        assert not m._engine.pool.running
        # the states are usable afterwards
        assert m.transcribe(audio[: 20 * SR], preset="fast").text.strip()


def test_a_plain_name_loads_the_cpus_best_variant() -> None:
    info = _native.build_info()
    bf16 = "AVX512_BF16 = 1" in info["system_info"] and not (info["cuda"] or info["metal"] or info["vulkan"])
    assert preferred_variant("tiny.en") == ("tiny.en-bf16q8" if bf16 else "tiny.en")
    assert preferred_variant("tiny.en-q8_0") == "tiny.en-q8_0"
    assert preferred_variant("./models/ggml-tiny.en.bin") == "./models/ggml-tiny.en.bin"
    assert preferred_variant("tiny.en", use_gpu=False) == preferred_variant("tiny.en")
