"""Long files stream (issue 14): ``transcribe(path)`` of a long file decodes it block by block
into a disk spool, the VAD and the pause envelope fed on the way (whisperx_native/filestream.py),
for the transcript of its samples in memory and the memory of a short clip."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import whisperx_native as wn
from whisperx_native import filestream, pipeline, words
from whisperx_native.audio import stream_audio
from whisperx_native.cancel import CancelToken
from whisperx_native.errors import AudioError, Cancelled
from whisperx_native.vad.silero import load_vad
from _util import JFK_WAV, peak_rss_mb

SR = wn.SAMPLE_RATE
DATA = Path(__file__).parent / "data"


# --------------------------------------------------------------------------- audio to build files of
@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return wn.load_audio(DATA / "long_speech.ogg")  # 131 s of varied speech with pauses


@pytest.fixture(scope="module")
def long_flac(tmp_path_factory, speech) -> Path:
    """3.5 min of speech as 44.1 kHz stereo FLAC (libsndfile, soxr resampling, downmix)."""
    import soxr

    mono = np.concatenate([speech, np.zeros(7 * SR, np.float32), 0.6 * speech[: 70 * SR]])
    hi = soxr.resample(mono, SR, 44100).astype(np.float32)
    stereo = np.stack([hi, 0.8 * hi], axis=1)
    path = tmp_path_factory.mktemp("long") / "long.flac"
    sf.write(path, np.clip(stereo, -1, 1), 44100, subtype="PCM_16")
    return path


def _sparse_speech(seconds: float, every_s: float, jfk: np.ndarray) -> np.ndarray:
    """``seconds`` of faint noise with jfk.wav every ``every_s`` seconds: minutes of audio for
    the decode, the spool and the VAD, a few chunks of inference."""
    x = (np.random.default_rng(5).standard_normal(int(seconds * SR)) * 3e-4).astype(np.float32)
    for t in np.arange(1.0, seconds - jfk.size / SR - 1, every_s):
        a = int(t * SR)
        x[a:a + jfk.size] += jfk
    return x


@pytest.fixture(scope="module")
def sparse_files(tmp_path_factory, jfk_samples):
    """FLAC files of jfk.wav every 39 s in faint noise (pairs of it make the chunks): 160 s
    (two chunks), 10 and 20 minutes."""
    d = tmp_path_factory.mktemp("sparse")
    files = {}
    for name, seconds in (("clip", 160.0), ("10min", 600.0), ("20min", 1200.0)):
        files[name] = d / f"{name}.flac"
        sf.write(files[name], _sparse_speech(seconds, 39.0, jfk_samples), SR, subtype="PCM_16")
    return files


def _spool_fds(directory) -> list:
    """This process's open files in ``directory`` (the spool: an unlinked file there)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory) + "/"):
            found.append(target)
    return found


@pytest.fixture
def spool_dir(tmp_path, monkeypatch) -> Path:
    """Temporary files (the spool) of this test in a directory of its own."""
    d = tmp_path / "spool"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


# --------------------------------------------------------------------------- pieces (no model)
def test_stream_audio_blocks_are_load_audio_bit_for_bit(long_flac) -> None:
    blocks = []
    n = stream_audio(long_flac, blocks.append)
    whole = wn.load_audio(long_flac)
    assert len(blocks) > 10 and max(b.size for b in blocks) < SR * 10
    assert all(b.dtype == np.float32 and b.flags.c_contiguous for b in blocks)
    assert n == whole.size and np.array_equal(np.concatenate(blocks), whole)
    # what the sink raises comes out as it is, not as an AudioError
    with pytest.raises(KeyError):
        stream_audio(long_flac, lambda b: {}["x"])


def test_spool_reads_back_slices(tmp_path) -> None:
    x = np.random.default_rng(0).standard_normal(100_003).astype(np.float32)
    with filestream.Spool(str(tmp_path)) as spool:
        for a in range(0, x.size, 7777):
            spool.write(x[a:a + 7777])
        assert os.listdir(tmp_path) == []  # unlinked from the start: nothing to leave behind
        assert len(spool) == spool.size == x.size and spool.dtype == np.float32 and spool.shape == (x.size,)
        for a, b in ((0, 10), (5, 100_003), (99_000, 200_000), (-50, None), (10, 10)):
            got = spool[a:b]
            assert got.dtype == np.float32 and np.array_equal(got, x[a:b])
        got = spool[0:5]
        got[:] = 0  # a fresh array, not a view of anything
        assert np.array_equal(spool[0:5], x[:5])
        with pytest.raises(TypeError):
            spool[3]
    assert spool.closed


def test_loudness_block_by_block_gives_the_pauses_of_the_whole(speech) -> None:
    ref = words.pauses(speech)
    assert len(ref) > 20
    for block in (160 * 7, 1000, 65536, 12345):
        loud = words.Loudness()
        for a in range(0, speech.size, block):
            loud.add(speech[a:a + block])
        assert loud.pauses() == ref


def test_read_path_gives_the_vad_segments_of_one_call(long_flac, spool_dir) -> None:
    params = pipeline.vad_parameters(wn.DecodeOptions())
    seen = []

    def decide(n):
        seen.append(n)
        return filestream.StreamPlan(None, params, gaps=True, opts="opts")

    whole = wn.load_audio(long_flac)
    with filestream.read_path(long_flac, decide) as read:
        assert read.streamed and read.opts == "opts" and len(seen) == 1 and seen[0] > filestream.HEAD_SAMPLES
        assert read.samples.size == whole.size and np.array_equal(read.samples[12345:987654], whole[12345:987654])
        vad, _ = load_vad()
        try:
            assert read.speech == vad.segments(whole, **params) and len(read.speech) > 10
        finally:
            vad.close()
        assert read.gaps == words.pauses(whole)
        assert len(_spool_fds(spool_dir)) == 1
    assert _spool_fds(spool_dir) == [] and os.listdir(spool_dir) == []
    # the call needs the file whole (decide says None): load_audio's array
    read = filestream.read_path(long_flac, lambda n: None)
    assert not read.streamed and np.array_equal(read.samples, whole)
    # a short file is the array it always was
    read = filestream.read_path(JFK_WAV, decide)
    assert not read.streamed and np.array_equal(read.samples, wn.load_audio(JFK_WAV)) and len(seen) == 1


# --------------------------------------------------------------------------- real inference
def _key(result, with_words: bool):
    return [(s.start, s.end, s.text) + ((tuple((w.start, w.end, w.word, w.probability) for w in s.words),)
                                        if with_words else ()) for s in result.segments]


@pytest.mark.parametrize("word_timestamps", [False, True])
def test_long_file_transcript_equals_the_in_memory_one(tiny, long_flac, spool_dir, word_timestamps) -> None:
    """The transcript of a streamed file is its samples' transcript: texts, times, words."""
    streamed = tiny.transcribe(long_flac, preset="fast", word_timestamps=word_timestamps)
    assert streamed.timings["chunks"] > 3 and streamed.timings["vad_ms"] > 0
    in_memory = tiny.transcribe(wn.load_audio(long_flac), preset="fast", word_timestamps=word_timestamps)
    assert streamed.timings["audio_seconds"] == in_memory.timings["audio_seconds"] > 200
    assert len(streamed.segments) > 20
    if word_timestamps:
        assert sum(len(s.words) for s in streamed.segments) > 300
    assert _key(streamed, word_timestamps) == _key(in_memory, word_timestamps)
    assert streamed.text == in_memory.text
    assert os.listdir(spool_dir) == [] and _spool_fds(spool_dir) == []


def test_chunks_are_transcribed_while_the_file_is_still_read(tiny, sparse_files, spool_dir, monkeypatch) -> None:
    """The chunks the rest of the file can no longer change start while the file is still
    decoded and its VAD runs (model._ReadAhead); the transcript is the in-memory one."""
    import whisperx_native.model as model_module

    events = []
    real_read, real_run = filestream.read_path, pipeline.run_chunk

    def read_path(*args, **kwargs):
        out = real_read(*args, **kwargs)
        events.append(("read", time.perf_counter()))
        return out

    def run_chunk(*args, **kwargs):
        events.append(("chunk", time.perf_counter()))
        return real_run(*args, **kwargs)

    monkeypatch.setattr(model_module.filestream, "read_path", read_path)
    monkeypatch.setattr(model_module.pipeline, "run_chunk", run_chunk)
    long = sparse_files["10min"]
    streamed = tiny.transcribe(long, preset="fast", n_threads=1)  # one worker: the reader has a core
    kinds = [k for k, _ in events]
    assert kinds.count("read") == 1 and kinds.count("chunk") == streamed.timings["chunks"] > 5
    assert kinds.index("chunk") < kinds.index("read")  # the first chunk ran before the read ended
    monkeypatch.undo()
    in_memory = tiny.transcribe(wn.load_audio(long), preset="fast", n_threads=1)
    assert _key(streamed, False) == _key(in_memory, False)
    assert _spool_fds(spool_dir) == [] and os.listdir(spool_dir) == []


def test_a_chunk_that_changes_after_it_settled_is_run_from_the_final_plan(tiny, long_flac, spool_dir, monkeypatch,
                                                                           caplog) -> None:
    """Every chunk of the speech so far handed out at once, the last one cut off where the
    read stood: the final plan's chunks replace it and what follows, for the same transcript."""
    import logging

    import whisperx_native.model as model_module

    monkeypatch.setattr(model_module, "settled", lambda chunks, n: len(chunks))
    with caplog.at_level(logging.INFO, logger="whisperx_native"):
        streamed = tiny.transcribe(long_flac, preset="fast")
    assert "changed after it settled" in caplog.text
    in_memory = tiny.transcribe(wn.load_audio(long_flac), preset="fast")
    assert _key(streamed, False) == _key(in_memory, False)
    assert streamed.timings["chunks"] == in_memory.timings["chunks"]
    assert _spool_fds(spool_dir) == [] and os.listdir(spool_dir) == []


def test_transcribe_iter_of_a_long_file_streams_it_too(tiny, long_flac, spool_dir) -> None:
    with tiny.transcribe_iter(long_flac, preset="fast") as segments:
        seen = list(segments)
    ref = tiny.transcribe(long_flac, preset="fast")
    assert [(s.start, s.end, s.text) for s in seen] == _key(ref, False)
    assert _spool_fds(spool_dir) == []


def _corrupt_copy(src: Path, dst: Path) -> Path:
    """``src`` (FLAC) with bytes at 60 % overwritten: libsndfile loses sync mid-stream."""
    b = bytearray(src.read_bytes())
    at = len(b) * 6 // 10
    b[at:at + 4000] = np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(b))
    return dst


def test_a_file_that_fails_mid_stream_raises_load_audios_error(tiny, long_flac, spool_dir, tmp_path) -> None:
    bad = _corrupt_copy(long_flac, tmp_path / "corrupt.flac")
    with pytest.raises(AudioError) as expected:
        wn.load_audio(bad)
    with pytest.raises(AudioError) as got:
        tiny.transcribe(bad)
    assert "lost sync" in str(expected.value) and str(got.value) == str(expected.value)
    truncated = tmp_path / "truncated.flac"
    truncated.write_bytes(long_flac.read_bytes()[: long_flac.stat().st_size * 2 // 3])
    with pytest.raises(AudioError) as expected:
        wn.load_audio(truncated)
    with pytest.raises(AudioError) as got:
        tiny.transcribe(truncated, word_timestamps=True)
    assert str(got.value) == str(expected.value)
    # NaN late in a long float file: refused after the decode, with load_audio's count
    x = wn.load_audio(JFK_WAV)
    x = np.concatenate([x] * 8)
    x[-1000:-990] = np.nan
    nan_wav = tmp_path / "nan.wav"
    sf.write(nan_wav, x, SR, subtype="FLOAT")
    with pytest.raises(AudioError) as expected:
        wn.load_audio(nan_wav)
    with pytest.raises(AudioError) as got:
        tiny.transcribe(nan_wav)
    assert "10 NaN/Inf" in str(expected.value) and str(got.value) == str(expected.value)
    assert _spool_fds(spool_dir) == [] and os.listdir(spool_dir) == []


@pytest.mark.parametrize("how", ["token", "model"])
def test_cancel_while_a_long_file_is_read(tiny, sparse_files, spool_dir, how) -> None:
    """A cancel during the decode and VAD pass stops it between blocks; the spool goes."""
    long = sparse_files["10min"]
    token = CancelToken()
    seen = threading.Event()

    def cancel_once_spooling():
        deadline = time.monotonic() + 60
        while not _spool_fds(spool_dir) and time.monotonic() < deadline:
            time.sleep(0.001)
        seen.set()
        token.cancel() if how == "token" else tiny.cancel()

    th = threading.Thread(target=cancel_once_spooling)
    th.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(Cancelled):
            tiny.transcribe(long, preset="fast", cancel_token=token)
    finally:
        th.join()
    assert seen.is_set() and time.perf_counter() - t0 < 30
    assert _spool_fds(spool_dir) == [] and os.listdir(spool_dir) == []
    # the model serves the next call
    assert "country" in tiny.transcribe(JFK_WAV, preset="fast").text


@pytest.mark.parametrize("which", ["10min", "jfk"])
def test_a_model_cancel_between_the_read_and_the_run_is_not_lost(tiny, sparse_files, monkeypatch, which) -> None:
    """Model.cancel() landing after the file was read and before any state runs (planted in
    make_plan: the one moment between them) stops the call: its states join the call's
    cancelled group. A long file's chunks and a short file's single run alike."""
    real = pipeline.make_plan

    def make_plan_then_cancel(*args, **kwargs):
        plan = real(*args, **kwargs)
        tiny.cancel()
        return plan

    monkeypatch.setattr(pipeline, "make_plan", make_plan_then_cancel)
    path = sparse_files["10min"] if which == "10min" else JFK_WAV
    t0 = time.perf_counter()
    with pytest.raises(Cancelled):
        tiny.transcribe(path, preset="fast")
    assert time.perf_counter() - t0 < 30
    monkeypatch.undo()
    assert "country" in tiny.transcribe(JFK_WAV, preset="fast").text  # the model serves the next call


# --------------------------------------------------------------------------- memory
_CHILD = """
import json, os, sys
import whisperx_native as wn
model, path, how, out = sys.argv[1:5]
spool_dir = os.environ["TMPDIR"]
seen = []

def on_segment(seg):  # the spool is open while chunks run: an unlinked file in TMPDIR
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(spool_dir + "/"):
                seen.append(fd)
        except OSError:
            pass

m = wn.Model(model, n_threads=2, adapt_threads=False)
audio = wn.load_audio(path) if how == "array" else path
# full windows: the fast preset trims a chunk's encoder context to its length, which would
# compare the buffers a clip's short chunks touch with those of full ones, not the file's length
r = m.transcribe(audio, preset="fast", language="en", audio_ctx=1500, segment_callback=on_segment)
json.dump({"text": r.text, "chunks": r.timings.get("chunks"), "workers": r.timings.get("workers"),
           "audio_s": r.timings["audio_seconds"], "spooled": bool(seen)}, open(out, "w"))
"""


def _peak_rss_mb(model: Path, audio: Path, how: str, tmp: Path) -> tuple:
    spool = tmp / f"tmp-{how}-{audio.stem}"
    spool.mkdir(parents=True)
    out = tmp / f"{how}-{audio.stem}.json"
    # glibc raises its mmap threshold each time a large block is freed, so the heap of a process
    # that keeps freeing and allocating megabytes creeps up over its first runs (measured: +6..11 MB
    # from 10 to 20 minutes of chunks, the same with samples in memory). Pinned, the peak is what
    # the code holds; bench/long_file_memory.py measures the default allocator.
    env = dict(os.environ, TMPDIR=str(spool), MALLOC_MMAP_THRESHOLD_="131072")
    mb = peak_rss_mb(_CHILD, str(model), str(audio), how, str(out), env=env, cwd=str(tmp))
    assert os.listdir(spool) == []  # the spool leaves nothing behind
    return mb, json.loads(out.read_text())


def test_peak_memory_does_not_grow_with_the_files_length(tiny_en_ggml, sparse_files, tmp_path) -> None:
    """20 minutes transcribed from the path peak no higher than 10 minutes of the same speech;
    decoded into memory first, the 20 minutes hold their 77 MB of samples more."""
    peaks, runs = {}, {}
    # A run now and then peaks ~13 MB above its twins (measured 273 / 286 / 273 MB for one 10-minute
    # file), whatever the length: the lengths are compared by the lower of two runs each.
    for name, how, repeats in (("clip", "path", 1), ("10min", "path", 2), ("20min", "path", 2),
                               ("20min", "array", 1)):
        for i in range(repeats):
            mb, run = _peak_rss_mb(tiny_en_ggml, sparse_files[name], how, tmp_path / f"{name}-{how}-{i}")
            if (name, how) not in peaks or mb < peaks[name, how]:
                peaks[name, how], runs[name, how] = mb, run
    print("peak RSS MB:", {f"{k[0]} {k[1]}": round(v, 1) for k, v in peaks.items()},
          "chunks:", {k[0]: r["chunks"] for k, r in runs.items()})
    clip, mid, long, array = (runs[k] for k in (("clip", "path"), ("10min", "path"), ("20min", "path"),
                                                ("20min", "array")))
    assert clip["chunks"] == 2 and mid["chunks"] >= 7 and long["chunks"] >= 13
    assert clip["workers"] == mid["workers"] == long["workers"] == 2
    assert long["text"].count("country") >= 50 and array["text"] == long["text"]
    assert clip["spooled"] and mid["spooled"] and long["spooled"] and not array["spooled"]
    assert peaks["20min", "path"] <= peaks["10min", "path"] + 4.0
    # The states' first chunk runs touch more of their buffers than the two of a 160 s clip
    # (measured +19..24 MB), whatever the length after that: not the samples.
    assert peaks["10min", "path"] <= peaks["clip", "path"] + 32.0
    assert peaks["20min", "array"] >= peaks["20min", "path"] + 60.0  # what the streaming saves
