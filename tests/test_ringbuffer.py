"""RingBuffer: format conversion, drop-oldest overflow, absolute positions, SPSC stress."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from whisperx_native.errors import AudioError
from whisperx_native.realtime import RingBuffer, to_mono_float32

SR = 16000


def test_int16_and_interleaved_stereo_become_mono_float32():
    ring = RingBuffer(1.0, input_channels=2)
    left = np.array([16384, -32768, 0, 32767], np.int16)
    right = np.array([0, -32768, 16384, 32767], np.int16)
    inter = np.stack([left, right], axis=1).reshape(-1)  # L R L R ...
    assert ring.push(inter) == 4
    start, got = ring.read()
    assert start == 0 and got.dtype == np.float32
    np.testing.assert_allclose(got, (left.astype(np.float32) + right) / 2 / 32768)
    # (frames, channels) as sounddevice delivers it gives the same
    ring.push(np.stack([left, right], axis=1))
    np.testing.assert_allclose(ring.read()[1], got)


def test_bad_chunks_are_refused():
    with pytest.raises(AudioError):
        to_mono_float32(np.zeros(5, np.int16), channels=2)
    with pytest.raises(AudioError):
        to_mono_float32(np.zeros(4, np.int32))


def test_capture_rate_is_resampled_to_16k():
    ring = RingBuffer(5.0, input_rate=48000)
    t = np.arange(48000 * 2) / 48000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for i in range(0, tone.size, 480):  # 10 ms callback blocks
        ring.push(tone[i:i + 480])
    ring.close()
    _, got = ring.read()
    assert abs(got.size - 2 * SR) <= 2
    ref = (0.5 * np.sin(2 * np.pi * 440 * np.arange(got.size) / SR)).astype(np.float32)
    # soxr's filter delay is a few samples; compare the middle after aligning
    lag = int(np.argmax(np.correlate(got[1000:3000], ref[1000:2000], "valid")))
    assert lag < 50
    np.testing.assert_allclose(got[1000 + lag:30000], ref[1000:30000 - lag], atol=2e-3)


def test_overflow_drops_oldest_and_counts():
    ring = RingBuffer(1.0)                    # 16000 samples
    ramp = np.arange(40000, dtype=np.float32)
    for i in range(0, ramp.size, 1000):
        ring.push(ramp[i:i + 1000])          # the consumer reads nothing meanwhile
    assert ring.dropped == 40000 - 16000
    assert ring.overflows > 0
    start, got = ring.read()
    assert start == 24000                     # absolute position survives the drop
    np.testing.assert_array_equal(got, ramp[24000:])
    assert ring.dropped == 24000 and ring.stats()["dropped_samples"] == 24000


def test_chunk_larger_than_capacity_keeps_the_newest():
    ring = RingBuffer(0.5)                    # 8000 samples
    ring.push(np.zeros(100, np.float32))
    big = np.arange(20000, dtype=np.float32)
    assert ring.push(big) == 20000
    start, got = ring.read()
    assert start == 20100 - 8000
    np.testing.assert_array_equal(got, big[-8000:])
    assert ring.dropped == 20100 - 8000


def test_read_limits_and_wait():
    ring = RingBuffer(1.0)
    assert not ring.wait(10, timeout=0.01)
    ring.push(np.ones(100, np.float32))
    s, a = ring.read(30)
    assert (s, a.size) == (0, 30)
    s, a = ring.read()
    assert (s, a.size) == (30, 70)
    assert ring.read()[1].size == 0
    ring.close()
    assert ring.wait(10, timeout=0.01)        # closed: nothing more will come
    assert ring.exhausted
    with pytest.raises(RuntimeError):
        ring.push(np.ones(1, np.float32))


def test_stress_one_producer_one_consumer_no_corruption():
    """The producer pushes a ramp (sample value = its index) in random-sized chunks as
    fast as it can while a slower consumer reads random amounts: every sample read
    must be the right one at the right index; what is missing is counted as dropped."""
    ring = RingBuffer(0.25)                   # 4000 samples: overflows constantly
    total = 2_000_000
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 3000, size=total // 1000)
    errors = []
    delivered = [0]

    def produce():
        i = 0
        for n in sizes:
            if i >= total:
                break
            chunk = (np.arange(i, min(i + n, total)) % (1 << 20)).astype(np.float32)
            ring.push(chunk)
            i += chunk.size
        ring.close()

    def consume():
        crng = np.random.default_rng(4)
        while not ring.exhausted:
            start, got = ring.read(int(crng.integers(1, 5000)))
            if got.size:
                want = (np.arange(start, start + got.size) % (1 << 20)).astype(np.float32)
                if not np.array_equal(got, want):
                    errors.append(start)
                delivered[0] += got.size
            if crng.random() < 0.3:
                time.sleep(0.0002)            # a busy consumer

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    written = ring.written
    assert written == min(total, int(sizes.sum()))
    assert delivered[0] + ring.dropped == written
    assert ring.dropped > 0 and ring.overflows > 0   # the test did exercise overflow


def test_producer_never_waits_for_a_stalled_consumer():
    """A consumer that stops reading cannot hold the producer: pushes keep completing."""
    ring = RingBuffer(0.5)
    ring.read()                               # consumer took part, then stalls for good
    done = threading.Event()

    def produce():
        for _ in range(2000):
            ring.push(np.zeros(160, np.float32))
        done.set()

    threading.Thread(target=produce, daemon=True).start()
    assert done.wait(60), "push() blocked on a consumer that does not read"
    assert ring.dropped == 2000 * 160 - ring.capacity
