"""The native memory report agrees with what the process really holds."""

from __future__ import annotations

import json

import pytest

from _util import JFK_WAV, run_python


def test_memory_report_matches_rss_growth(tiny_en_ggml):
    # A fresh interpreter, so nothing else moves RSS between the readings.
    code = f"""
    import json, psutil
    import whisperx_native as wn
    from whisperx_native import _native
    samples = wn.load_audio({str(JFK_WAV)!r})
    opts = wn.DecodeOptions(n_threads=2, beam_size=1, language="en", temperature_increment=0.0)
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    ctx = _native.Context({str(tiny_en_ggml)!r})
    rss_load = proc.memory_info().rss
    st = ctx.new_state()
    st.full(samples, opts)
    rss_run = proc.memory_info().rss
    weights = sum(v for k, v in ctx.sizes.items() if k.endswith("total_size"))
    state = sum(st.memory().values())
    print(json.dumps(dict(weights=weights, state=state, state_parts=st.memory(),
                          load_growth=rss_load - rss0, total_growth=rss_run - rss0)))
    """
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    reported = m["weights"] + m["state"]
    print(f"weights {m['weights'] / 1e6:.1f} MB vs load RSS growth {m['load_growth'] / 1e6:.1f} MB; "
          f"weights+state {reported / 1e6:.1f} MB vs RSS growth {m['total_growth'] / 1e6:.1f} MB "
          f"(run {(m['total_growth'] - m['load_growth']) / 1e6:.1f} MB); state parts {m['state_parts']}")
    assert m["weights"] > 50e6 and m["state"] > 1e6
    # Loading reads every weight: resident memory grows by what whisper.cpp reports.
    assert abs(m["load_growth"] - m["weights"]) <= 0.2 * m["weights"]
    # A run touches most of the state's buffers (the encoder all of the shared compute
    # buffer, patch 0016). On Linux it hands them back when it ends (patch 0030): what stays
    # is host memory no buffer reports, ggml-cpu's work buffer (the largest graph's operands
    # converted to the weights' type) and the state's mel: 9 MB measured for tiny.en, against
    # 29 MB of state buffers. Elsewhere the buffers stay resident too (13 MB beyond them).
    import sys

    run_growth = m["total_growth"] - m["load_growth"]
    if sys.platform == "linux":
        assert run_growth < 0.5 * m["state"] and run_growth <= 18e6
    else:
        assert 0.5 * m["state"] <= run_growth <= m["state"] + 18e6


def test_model_memory_lists_states(tiny):
    mem = tiny.memory()
    assert mem["weights"] > 50e6
    assert mem["total"] >= mem["weights"] + sum(sum(s.values()) for s in mem["states"])


def test_beam_search_cache_holds_only_the_cells_a_run_writes(tiny_en_ggml):
    # Beam 5 reallocates the self-attention cache for a window's worst case (1536 cells,
    # patch 0010), but jfk.wav's run writes a few hundred. The cache's pages stay untouched
    # (and out of RSS) until written, and clearing zeroes only what was written (patch 0020).
    code = f"""
    import json, psutil
    import whisperx_native as wn
    from whisperx_native import _native
    samples = wn.load_audio({str(JFK_WAV)!r})
    greedy = wn.DecodeOptions(n_threads=2, beam_size=1, language="en", temperature_increment=0.0)
    beam = greedy.replace(beam_size=5)
    proc = psutil.Process()
    ctx = _native.Context({str(tiny_en_ggml)!r})
    st = ctx.new_state()
    st.full(samples, greedy)
    kv_greedy = st.memory()["kv_self_size"]
    rss0 = proc.memory_info().rss
    first = st.full(samples, beam)
    rss1 = proc.memory_info().rss
    again = st.full(samples, beam)
    rss2 = proc.memory_info().rss
    print(json.dumps(dict(kv_greedy=kv_greedy, kv_beam=st.memory()["kv_self_size"],
                          n_vocab=ctx.n_vocab, growth=rss1 - rss0, growth_again=rss2 - rss1,
                          same=[s.text for s in first["segments"]] == [s.text for s in again["segments"]])))
    """
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    print({k: (round(v / 1e6, 2) if isinstance(v, int) and v > 1000 else v) for k, v in m.items()})
    assert m["same"]
    assert m["kv_beam"] >= 2.5 * m["kv_greedy"]
    # The four more decoders' host vectors (logits, probs, log-probs: float; top-k pairs:
    # 16 bytes) are what the beam run adds besides the cache; the greedy cache is freed.
    decoders = 4 * m["n_vocab"] * (3 * 4 + 16)
    # With the whole cache resident the growth was kv_beam - kv_greedy + decoders (12 MB).
    assert m["growth"] < decoders + 0.4 * m["kv_beam"]
    assert m["growth_again"] < 2e6


def test_freed_heap_goes_back_to_the_os():
    # glibc keeps what a thread freed in that thread's heap, between the blocks still in use;
    # release_free_heap (after each long-form chunk, before a clip's native run) hands the
    # free pages back: a long file's chunks no longer each start where the last one peaked.
    import platform
    import sys

    import pytest

    if not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"):
        pytest.skip("malloc_trim is glibc's")
    code = """
    import json, threading, psutil
    from whisperx_native._heap import release_free_heap
    proc = psutil.Process()
    keep = []
    def churn():  # 40 MB in 100 kB blocks (below the mmap threshold: the thread's heap), one in ten kept
        blocks = [bytearray(100_000) for _ in range(400)]
        keep.extend(blocks[::10])
    rss0 = proc.memory_info().rss
    t = threading.Thread(target=churn)
    t.start(); t.join()
    rss1 = proc.memory_info().rss
    release_free_heap()
    rss2 = proc.memory_info().rss
    print(json.dumps(dict(kept=rss1 - rss0, after=rss2 - rss0)))
    """
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    assert m["kept"] > 30e6  # freed, but still the process's
    assert m["after"] < 10e6  # the kept tenth (4 MB) and the pages they share


@pytest.mark.parametrize("opt_out", [False, True])
def test_a_model_keeps_large_freed_blocks_out_of_the_heap(tiny_en_ggml, opt_out):
    # glibc raises its mmap threshold each time a mapped block is freed: after one 2 MB
    # temporary, 2 MB blocks come from the heap, and freed below a block still in use they stay
    # resident. A Model holds the threshold at 128 kB (_heap.keep_mmap_threshold): freed, they
    # are unmapped at once. WHISPERX_NATIVE_KEEP_MALLOC=1 leaves glibc as it is: the same churn
    # then keeps them, which is what this test tells apart.
    import platform
    import sys

    if not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"):
        pytest.skip("mallopt(M_MMAP_THRESHOLD) is glibc's")
    code = f"""
    import json, psutil, whisperx_native as wn
    m = wn.Model({str(tiny_en_ggml)!r}, n_threads=1, adapt_threads=False, best_variant=False)
    proc = psutil.Process()
    x = bytearray(2_000_000); del x  # a chunk's temporary, freed
    rss0 = proc.memory_info().rss
    blocks = [bytearray(2_000_000) for _ in range(10)]
    pin = bytearray(1_000_000)  # a block after them, still in use
    del blocks
    print(json.dumps(dict(kept=proc.memory_info().rss - rss0 - len(pin))))
    """
    proc = run_python(code, env={"WHISPERX_NATIVE_KEEP_MALLOC": "1"} if opt_out else {})
    assert proc.returncode == 0, proc.stderr
    kept = json.loads(proc.stdout.strip().splitlines()[-1])["kept"]
    if opt_out:
        assert kept > 15e6  # glibc's dynamic threshold: the 20 MB freed stay the process's
    else:
        assert kept < 2e6
