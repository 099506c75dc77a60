"""Issue 18's classes of failure, one test each (the fuzz campaign is test_fuzz.py),
and issue 17's cancel/lifecycle/manager bugs. Inputs that crashed the process before
the fix run in a subprocess, so a regression fails the test instead of killing pytest."""

from __future__ import annotations

import asyncio
import os
import struct
import threading
import time
import wave

import numpy as np
import pytest

import whisperx_native as wn
from _util import run_python
from whisperx_native import _native
from whisperx_native.cancel import CancelToken
from whisperx_native.realtime import RingBuffer
from whisperx_native.vad import default_vad_model, validate_vad_model
from whisperx_native.validation import PROMPT_MAX_BYTES, bound_prompt


# --------------------------------------------------------------------------- options
@pytest.mark.parametrize("options, error", [
    (dict(temperature=float("nan")), wn.OptionError),
    (dict(temperature=-float("inf"), temperature_increment=0.2), wn.OptionError),
    (dict(temperature=-1e12, temperature_increment=0.2), wn.OptionError),
    (dict(temperature_increment=1e-30), wn.OptionError),
    (dict(beam_size=2**40), wn.OptionError),
    (dict(offset_ms=2**40), wn.OptionError),
    (dict(max_tokens=2**31), wn.OptionError),
    (dict(language=123), wn.OptionTypeError),
    (dict(language="\udcff"), wn.OptionError),
    (dict(initial_prompt="abc\ud800"), wn.OptionError),
    (dict(beam_size="5"), wn.OptionTypeError),
    (dict(no_speech_threshold=float("inf")), wn.OptionError),
    (dict(vad_model="a\x00b", vad=True), wn.OptionError),
    (dict(not_an_option=1), wn.OptionTypeError),
])
def test_bad_options_are_refused_before_native_code(tiny, options, error):
    with pytest.raises(error):
        tiny.transcribe(np.zeros(8000, np.float32), preset="fast", **options)
    assert issubclass(error, wn.WhisperError)


def test_option_errors_keep_their_builtin_bases():
    assert issubclass(wn.OptionError, ValueError) and issubclass(wn.OptionTypeError, TypeError)
    assert issubclass(wn.OptionTypeError, wn.OptionError) and issubclass(wn.UsageError, RuntimeError)


def test_threads_are_clamped_not_refused(tiny, jfk_samples):
    r = tiny.transcribe(jfk_samples[:16000], preset="fast", n_threads=1000, decode_threads=500)
    assert r.timings["n_threads"] <= os.cpu_count()


def test_prompt_bound_is_linear_and_keeps_ordinary_prompts():
    ordinary = "Kubernetes, kubectl, etcd.\nNames: Zoë, 東京."
    assert bound_prompt(ordinary) == ordinary
    for bad in ("a" * 30000, " " * 100000, "漢" * 100000, "ab1 " * 50000, "!" * 200000):
        t0 = time.perf_counter()
        out = bound_prompt(bad)
        assert time.perf_counter() - t0 < 1.0
        assert len(out.encode()) <= PROMPT_MAX_BYTES + PROMPT_MAX_BYTES // 64 + 8
    assert bound_prompt("x " + "y" * 2000).endswith("y")  # the end of a long prompt is what whisper keeps


def test_long_prompts_and_nan_temperature_do_not_crash(tiny_en_ggml):
    """SIGSEGV in whisper.cpp's regex tokenizer, 12 s for 10000 spaces, an empty temperature list."""
    proc = run_python(f"""
        import time, numpy as np, whisperx_native as wn
        m = wn.Model({str(tiny_en_ggml)!r}, n_threads=1, adapt_threads=False)
        x = np.zeros(8000, np.float32)
        for p in ["a" * 30000, " " * 100000, "漢" * 100000, " " * 10000, "😀" * 50000]:
            t0 = time.perf_counter()
            m.transcribe(x, preset="fast", initial_prompt=p)
            assert time.perf_counter() - t0 < 5, (p[:3], time.perf_counter() - t0)
        try:
            m.transcribe(x, temperature=float("nan"))
        except wn.OptionError:
            print("ok")
    """, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


# --------------------------------------------------------------------------- VAD files
#: Silero v6.2.0's header: magic, "silero-16k", version, window, context, 4 layers x 3, 4 sizes.
_FIRST_TENSOR = 4 + 4 + 10 + 20 + 4 + 48 + 16


def _vad_bytes() -> bytearray:
    return bytearray(default_vad_model().read_bytes())


def _put(data: bytearray, off: int, value: int) -> bytes:
    struct.pack_into("<i", data, off, value)
    return bytes(data)


@pytest.mark.parametrize("what, mutate", [
    ("layer count", lambda d: _put(d, 8 + 10 + 20, 5)),
    ("lstm size", lambda d: _put(d, 8 + 10 + 24 + 48 + 4, 64)),
    ("window", lambda d: _put(d, 8 + 10 + 12, 2)),
    ("tensor dims", lambda d: _put(d, _FIRST_TENSOR + 12, 4)),
    ("tensor type", lambda d: _put(d, _FIRST_TENSOR + 8, 0)),
    ("tensor name length", lambda d: _put(d, _FIRST_TENSOR + 4, 10**6)),
    ("truncated", lambda d: bytes(d[:len(d) - 100])),
    ("appended", lambda d: bytes(d) + b"\x00" * 16),
])
def test_vad_files_are_validated_like_model_files(tmp_path, what, mutate):
    p = tmp_path / "vad.bin"
    p.write_bytes(mutate(_vad_bytes()))
    with pytest.raises(wn.ModelError):
        validate_vad_model(p)
    with pytest.raises(wn.ModelError):  # the native class validates too: never an abort
        _native.VadContext(str(p))


def test_vad_context_refuses_a_whisper_model_and_clamps_threads(tiny_en_ggml):
    with pytest.raises(wn.ModelError, match="not a VAD model"):
        _native.VadContext(str(tiny_en_ggml))
    with _native.VadContext(str(default_vad_model()), n_threads=1000) as v:
        assert v.n_threads <= os.cpu_count()
        with pytest.raises(wn.OptionError):
            v.segments(np.zeros(16000, np.float32), speech_pad_ms=2**31)
        assert v.detect(np.zeros(1024)).shape == (2,)  # float64 is converted


# --------------------------------------------------------------------------- audio
def test_fifo_and_devices_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    outcome = []
    t = threading.Thread(target=lambda: outcome.append(_error_of(wn.load_audio, fifo)), daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # release the blocked open before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("load_audio blocked on a FIFO without a writer")
    assert isinstance(outcome[0], wn.AudioError) and "FIFO" in str(outcome[0])
    with pytest.raises(wn.AudioError, match="character device"):
        wn.load_audio("/dev/zero")


def _error_of(fn, *args):
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return exc
    return None


def test_wav_with_an_absurd_sample_rate_is_refused(tmp_path):
    p = tmp_path / "2hz.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(2)
        w.writeframes(b"\x00\x01" * 48000)
    t0 = time.perf_counter()
    with pytest.raises(wn.AudioError, match="sample rate 2 Hz"):
        wn.load_audio(p)
    assert time.perf_counter() - t0 < 2


def test_non_utf8_file_names_are_read(tmp_path, jfk_samples):
    import shutil

    from _util import JFK_WAV

    p = os.fsdecode(os.fsencode(str(tmp_path)) + b"/\xff\xfe.wav")
    shutil.copy(JFK_WAV, p)
    assert wn.load_audio(p).size == jfk_samples.size


def test_big_endian_arrays_are_converted_and_absurd_values_refused():
    x = np.linspace(-0.5, 0.5, 16000).astype(">f4")
    np.testing.assert_array_equal(wn.as_samples(x), x.astype(np.float32))
    with pytest.raises(wn.AudioError, match="must be in"):
        wn.as_samples(np.full(16000, 1e30, np.float32))


# --------------------------------------------------------------------------- ring buffer
@pytest.mark.parametrize("kwargs", [dict(capacity_s=float("inf")), dict(capacity_s=1e9), dict(capacity_s=1e-5),
                                    dict(capacity_s="30"), dict(input_rate=0), dict(input_channels=10**6)])
def test_ring_buffer_arguments(kwargs):
    with pytest.raises(wn.WhisperError):
        RingBuffer(**kwargs)


def test_ring_buffer_push_after_close_is_a_closed_error():
    ring = RingBuffer(1.0)
    ring.push(np.zeros(100, np.float32))
    ring.close()
    with pytest.raises(wn.ClosedError):
        ring.push(np.zeros(100, np.float32))
    with pytest.raises(wn.OptionError):
        ring.wait(10, timeout=float("nan"))


# --------------------------------------------------------------------------- cancellation (issue 17)
def test_a_cancel_after_the_run_does_not_reach_the_next_call(tiny, jfk_samples, monkeypatch):
    """The token is still bound after State.full's finally cleared the flag: a cancel
    arriving then used to stay on the pooled state and cancel the next, unrelated call."""
    token = CancelToken()
    original = CancelToken.bind

    def bind(self, state):
        if state is None and self is token:
            token.cancel()  # arrives after the run, before the state goes back to the pool
        return original(self, state)

    monkeypatch.setattr(CancelToken, "bind", bind)
    tiny.transcribe(jfk_samples[:16000], preset="fast", cancel_token=token)
    monkeypatch.setattr(CancelToken, "bind", original)
    assert tiny.transcribe(jfk_samples[:16000], preset="fast").segments is not None  # not Cancelled


def test_a_late_cancel_of_a_previous_owner_is_void(tiny_en_ggml, jfk_samples):
    """Model.cancel() snapshots the running states; by the time it calls cancel() the
    state may serve another call. The generation it read makes that cancel a no-op."""
    with _native.Context(str(tiny_en_ggml)) as ctx, ctx.new_state() as st:
        first = st.claim()
        st.claim()                 # the pool handed the state to a new call
        st.cancel(first)           # the stale cancel
        opts = wn.DecodeOptions(language="en", beam_size=1, best_of=1, temperature_increment=0.0, n_threads=1)
        assert st.full(jfk_samples[:16000], opts)["segments"] is not None
        st.cancel(st.generation)   # the current owner's cancel still works
        with pytest.raises(wn.Cancelled):
            st.full(jfk_samples[:16000], opts)


def test_model_cancel_leaves_a_state_back_in_the_pool_alone(tiny, jfk_samples):
    stale = []

    def snapshot(_percent):  # what Model.cancel() reads under its lock, mid-run
        stale[:] = [(st, st.generation) for st in tiny._engine.pool.running]

    tiny.transcribe(jfk_samples[:16000], preset="fast", progress_callback=snapshot)
    assert stale
    for st, generation in stale:  # ... and acts on after the run, the state back in the pool
        st.cancel(generation)
    assert tiny.transcribe(jfk_samples[:16000], preset="fast").segments is not None


def test_state_init_twice_is_refused(tiny_en_ggml):
    with _native.Context(str(tiny_en_ggml)) as ctx, ctx.new_state() as st:
        with pytest.raises(wn.UsageError):
            st.__init__(ctx)
        with pytest.raises(wn.UsageError):
            ctx.__init__(str(tiny_en_ggml))


# --------------------------------------------------------------------------- manager (issue 17)
def test_manager_status_does_not_hold_its_lock_while_measuring(tiny_en_ggml, monkeypatch):
    from whisperx_native.manager import manager as mm

    mgr = wn.WhisperManager(str(tiny_en_ggml), auto_downgrade=False, idle_timeout=None)
    held = []

    def rss():
        got = []

        def probe():  # another thread: can it take the manager's lock right now?
            ok = mgr._cond.acquire(timeout=1.0)
            if ok:
                mgr._cond.release()
            got.append(ok)

        t = threading.Thread(target=probe)
        t.start()
        t.join()
        held.append(not got[0])
        return 0

    monkeypatch.setattr(mm, "process_rss", rss)
    try:
        mgr.status()
    finally:
        mgr.close()
    assert held == [False]


def test_manager_unknown_model_is_a_model_error_not_a_budget_error():
    mgr = wn.WhisperManager("no-such-model", auto_downgrade=False)
    try:
        with pytest.raises(wn.ModelError) as info:
            mgr.transcribe(np.zeros(16000, np.float32))
        assert not isinstance(info.value, wn.MemoryBudgetError)
    finally:
        mgr.close()


@pytest.mark.parametrize("kwargs", [dict(idle_timeout=float("nan")), dict(max_concurrent=0),
                                    dict(cpu_threshold=float("inf")), dict(memory_budget="big")])
def test_manager_arguments(kwargs):
    with pytest.raises(wn.WhisperError):
        wn.WhisperManager("tiny.en", auto_downgrade=False, **kwargs)


def test_manager_infinite_idle_timeout_means_never(tiny_en_ggml):
    with wn.WhisperManager(str(tiny_en_ggml), idle_timeout=float("inf"), auto_downgrade=False) as mgr:
        mgr.transcribe(np.zeros(16000, np.float32), preset="fast")
        assert mgr.loaded and mgr.idle_timeout is None


def test_atranscribe_lets_a_second_cancel_through(tiny_en_ggml, long_samples):
    async def main(mgr):
        task = asyncio.ensure_future(mgr.atranscribe(np.concatenate([long_samples] * 4)))
        await asyncio.sleep(0.3)
        task.cancel()
        await asyncio.sleep(0)
        task.cancel()  # a second cancel while it waits for the worker to unwind
        with pytest.raises(asyncio.CancelledError):
            await task

    with wn.WhisperManager(str(tiny_en_ggml), auto_downgrade=False, n_threads=1) as mgr:
        asyncio.run(main(mgr))


def test_atranscribe_raises_the_second_cancel_not_a_swallowed_one():
    """A second cancel while atranscribe waits for its worker to unwind used to be swallowed
    (``except BaseException: pass``) and the first re-raised in its place. Now the second
    comes out as it was raised, at once (no model needed: the worker is a stub)."""
    mgr = wn.WhisperManager("tiny.en", auto_downgrade=False)
    release = threading.Event()

    def slow_to_unwind(audio, cancel_token=None, **options):
        release.wait(10)
        raise wn.Cancelled("cancelled")

    mgr.transcribe = slow_to_unwind

    async def main():
        task = asyncio.ensure_future(mgr.atranscribe(np.zeros(16000, np.float32)))
        await asyncio.sleep(0.05)
        task.cancel("first")
        await asyncio.sleep(0.05)
        task.cancel("second")
        t0 = time.monotonic()
        with pytest.raises(asyncio.CancelledError) as info:
            await task
        return info.value, time.monotonic() - t0

    try:
        error, waited = asyncio.run(main())
    finally:
        release.set()
        mgr.close()
    assert error.args == ("second",) and waited < 1.0
