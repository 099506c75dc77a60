"""Batch transcription, local engine: inputs, outputs equal to one-file-at-a-time
transcripts, resume, failures, Ctrl-C. Real tiny.en inference on espeak-ng speech."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import whisperx_native as wn
from whisperx_native.batch import expand_inputs, plan_layout, transcribe_many
from whisperx_native.batch.inputs import output_parses
from whisperx_native.output import render
from _batch_audio import BROKEN, copies, make_corpus
from _util import default_sigint

FORMATS = ["json", "txt", "srt"]
FAST = {"preset": "fast", "language": "en"}


def batch_cli(*args, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    """``python -m whisperx_native.batch ARGS`` outside the checkout (the installed package)."""
    proc = subprocess.run([sys.executable, "-m", "whisperx_native.batch", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=tempfile.gettempdir(), **popen)
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return root, make_corpus(root)


@pytest.fixture(scope="module")
def reference(tiny_en_ggml, corpus):
    """Each good file transcribed alone by Model.transcribe, 1 thread, the fast preset."""
    _, files = corpus
    with wn.Model(tiny_en_ggml, n_threads=1, adapt_threads=False) as m:
        return {stem: m.transcribe(str(p), **FAST) for stem, p in files.items() if stem != BROKEN}


def assert_same_as_reference(out: Path, reference, formats=FORMATS):
    for stem, result in reference.items():
        if "txt" in formats:
            assert (out / f"{stem}.txt").read_text() == render(result, "txt"), stem
        if "srt" in formats:
            assert (out / f"{stem}.srt").read_text() == render(result, "srt"), stem
        if "json" in formats:
            d = json.loads((out / f"{stem}.json").read_text())
            assert d["text"] == result.text, stem
            assert [(s["start"], s["end"], s["text"]) for s in d["segments"]] == \
                   [(s.start, s.end, s.text) for s in result.segments], stem
    assert all(r.text.split() for r in reference.values())  # real speech came out


def outputs(out: Path):
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------- inputs
def test_inputs_directories_patterns_lists_and_names(tmp_path, monkeypatch):
    root = tmp_path / "in"
    for rel in ["x/a.wav", "x/a.mp3", "x/sub/b.flac", "x/.hidden.wav", "x/notes.txt", "y/c.ogg", "d.m4a"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# a comment\n\n{root / 'd.m4a'}\n{root / 'x/a.wav'}\n")
    items = expand_inputs([root / "x", str(root / "y" / "*.ogg"), f"@{listing}", root / "missing.wav"])
    assert [(Path(i.path).relative_to(root).as_posix() if i.path.startswith(str(root)) else i.path, i.stem)
            for i in items] == [
        ("x/a.mp3", "a"), ("x/a.wav", "a-2"), ("x/sub/b.flac", "sub/b"),   # sorted; a name clash gets -2
        ("y/c.ogg", "c"),                                                  # pattern: relative to its fixed folders
        ("d.m4a", "d"),                                                    # from the list; x/a.wav again is dropped
        ("missing.wav", "missing"),                                        # recorded as a failure later
    ]
    monkeypatch.chdir(tmp_path)
    assert [i.stem for i in expand_inputs(["in/**/*.wav"])] == ["x/a"]   # ** recurses, hidden files skipped


def test_layout_defaults_keep_workers_times_threads_within_the_cores():
    assert plan_layout(2, None, None) == (2, 1)
    assert plan_layout(8, 2, None) == (2, 4)
    assert plan_layout(8, None, 3) == (2, 3)
    assert plan_layout(2, 1, 2) == (1, 2)
    assert plan_layout(1, None, 4) == (1, 4)
    assert plan_layout(4, None, None, n_files=1) == (1, 4)   # one file: the cores become its threads
    assert plan_layout(4, None, None, n_files=3) == (3, 1)
    assert plan_layout(4, None, None, n_files=0) == (4, 1)


# ---------------------------------------------------------------------------- real runs
def test_cli_batch_equals_single_file_transcripts_records_failures_and_resumes(tiny_en_ggml, corpus, reference,
                                                                                  tmp_path):
    root, files = corpus
    out = tmp_path / "out"
    args = [root, "-o", out, "-f", ",".join(FORMATS), "-m", tiny_en_ggml, "--preset", "fast", "-l", "en",
            "--workers", 2, "--threads-per-worker", 1]
    proc = batch_cli(*args)
    assert proc.returncode == 1, proc.stderr            # one file failed, the others are done
    assert_same_as_reference(out, reference)
    want = sorted([f"{stem}.{fmt}" for stem in reference for fmt in FORMATS] + ["failures.jsonl", "summary.json"])
    assert outputs(out) == want                         # sub-folders mirrored, nothing for broken/notes
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [(f["path"], f["error_type"]) for f in failures] == [(str(files[BROKEN]), "AudioError")]
    assert failures[0]["message"]
    s = json.loads((out / "summary.json").read_text())
    assert (s["files"], s["done"], s["skipped"], s["failed"]) == (6, 5, 0, 1)
    assert (s["engine"], s["workers"], s["threads_per_worker"], s["interrupted"]) == ("local", 2, 1, False)
    audio = sum(r.timings["audio_seconds"] for r in reference.values())
    assert s["audio_seconds"] == pytest.approx(audio, abs=0.01)
    assert s["throughput_x_realtime"] == pytest.approx(s["audio_seconds"] / s["wall_seconds"], rel=0.01)

    # Resume: the finished files are skipped (not even rewritten); the broken one is tried again.
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.json") if p.name != "summary.json"}
    t0 = time.perf_counter()
    proc = batch_cli(*args, "--quiet")
    assert proc.returncode == 1 and proc.stderr.count("\n") <= 1, proc.stderr
    assert time.perf_counter() - t0 < 30
    s = json.loads((out / "summary.json").read_text())
    assert (s["done"], s["skipped"], s["failed"]) == (0, 5, 1)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # An output that no longer parses (or is missing) makes its file run again, and only that file.
    (out / "four.json").write_text('{"text": "trunc')
    (out / "a/two.srt").unlink()
    summary = transcribe_many([root], out, formats=FORMATS, model=tiny_en_ggml, workers=2, threads_per_worker=1,
                              **FAST)
    assert (summary["done"], summary["skipped"], summary["failed"]) == (2, 3, 1)
    assert_same_as_reference(out, reference)


def test_default_preset_equals_model_transcribe(tiny_en_ggml, corpus, tmp_path):
    _, files = corpus
    src = [files["b/jfk"], files["a/one"]]
    # Single-threaded (2 threads spin at a barrier: on a busy 2-core CI machine that is slow).
    with wn.Model(tiny_en_ggml, n_threads=1, adapt_threads=False) as m:
        want = {p: m.transcribe(str(p)) for p in src}
    out = tmp_path / "out"
    summary = transcribe_many(src, out, formats=["json", "txt"], model=tiny_en_ggml, workers=2,
                              threads_per_worker=1)
    assert (summary["done"], summary["failed"], summary["preset"]) == (2, 0, "accurate")
    for p, result in want.items():
        assert (out / f"{p.stem}.txt").read_text() == render(result, "txt")
        d = json.loads((out / f"{p.stem}.json").read_text())
        assert [(s["start"], s["end"], s["text"]) for s in d["segments"]] == \
               [(s.start, s.end, s.text) for s in result.segments]


def test_bad_option_stops_the_batch_with_a_usage_error(tiny_en_ggml, corpus, tmp_path):
    root, _ = corpus
    proc = batch_cli(root, "-o", tmp_path / "out", "-m", tiny_en_ggml, "--language", "xx")
    assert proc.returncode == 2 and "unknown language" in proc.stderr
    proc = batch_cli(root, "-o", tmp_path / "out", "-m", tiny_en_ggml, "--language", "de", "--quiet")
    assert proc.returncode == 2 and "English-only" in proc.stderr, proc.stderr


def wait_for(predicate, timeout: float, proc=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def check_interrupted_run(out: Path, n_files: int, formats=FORMATS):
    """No temporary or partial file anywhere; each input has all its outputs or none."""
    names = outputs(out)
    assert not [n for n in names if n.endswith(".tmp") or Path(n).name.startswith(".")], names
    stems = {}
    for n in names:
        p = out / n
        if p.name in ("summary.json", "failures.jsonl"):
            continue
        assert output_parses(p, p.suffix[1:]), n
        stems.setdefault(n.rsplit(".", 1)[0], set()).add(p.suffix[1:])
    assert all(fmts == set(formats) for fmts in stems.values()), stems
    s = json.loads((out / "summary.json").read_text())
    assert s["interrupted"] is True and s["done"] == len(stems) < n_files
    return s


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_cleanly_without_partial_outputs_and_resume_finishes(tiny_en_ggml, corpus, reference,
                                                                          tmp_path, sig, code):
    _, files = corpus
    src = copies([files[s] for s in ("a/one", "b/jfk", "four", "a/two")], tmp_path / "many", 24)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "whisperx_native.batch", tmp_path / "many", "-o", out, "-f", ",".join(FORMATS),
            "-m", tiny_en_ggml, "--preset", "fast", "-l", "en", "-w", 2, "-t", 1, "-q"]
    proc = subprocess.Popen(list(map(str, args)), cwd=tempfile.gettempdir(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        assert wait_for(lambda: out.exists() and any(out.glob("*.txt")), 120, proc), proc.communicate()
        proc.send_signal(sig)  # SIGINT: what Ctrl-C sends
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert ("interrupted" if code == 130 else "terminated") in err and "Traceback" not in err
    check_interrupted_run(out, len(src))

    summary = transcribe_many([tmp_path / "many"], out, formats=FORMATS, model=tiny_en_ggml, workers=2,
                              threads_per_worker=1, **FAST)
    assert summary["done"] + summary["skipped"] == len(src) and summary["skipped"] > 0
    # every copy has its original's transcript, whichever worker and state took it
    for p, s in zip(src, ["a/one", "b/jfk", "four", "a/two"] * 6):
        assert (out / f"{p.stem}.txt").read_text() == render(reference[s], "txt")


def test_long_file_among_short_ones_equals_model_transcribe(tiny_en_ggml, corpus, reference, tmp_path):
    """A file longer than one window (Model.transcribe's long-form path; with two workers its
    chunks may run on both states) gets the transcript a single Model.transcribe gives it."""
    import numpy as np
    import soundfile as sf

    _, files = corpus
    pause = np.zeros(16000, np.float32)
    parts = [wn.load_audio(files[s]) for s in ("a/one", "b/jfk", "four", "a/two", "b/c/three", "b/jfk")]
    long_wav = tmp_path / "in" / "long.wav"
    long_wav.parent.mkdir()
    sf.write(str(long_wav), np.concatenate([x for p in parts for x in (p, pause)]), 16000, subtype="FLOAT")
    with wn.Model(tiny_en_ggml, n_threads=1, adapt_threads=False) as m:
        want = m.transcribe(str(long_wav), **FAST)
    assert want.timings["audio_seconds"] > 50
    for stem in ("a/one", "four"):
        (tmp_path / "in" / f"{stem.replace('/', '_')}.wav").write_bytes(files[stem].read_bytes())
    out = tmp_path / "out"
    s = transcribe_many([tmp_path / "in"], out, formats=["json", "txt"], model=tiny_en_ggml, workers=2,
                        threads_per_worker=1, **FAST)
    assert (s["done"], s["failed"]) == (3, 0)
    assert (out / "long.txt").read_text() == render(want, "txt")
    d = json.loads((out / "long.json").read_text())
    assert [(x["start"], x["end"], x["text"]) for x in d["segments"]] == \
           [(x.start, x.end, x.text) for x in want.segments]
    assert (out / "a_one.txt").read_text() == render(reference["a/one"], "txt")


def test_batch_cli_word_timestamps_are_dtw_words() -> None:
    # --word-timestamps means the alignment heads' word times, as in the transcribe command
    # (it was mapped to whisper.cpp's token timestamps)
    import argparse

    from whisperx_native.batch import cli as batch_cli_module

    parser = argparse.ArgumentParser()
    batch_cli_module.add_parser(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["batch", "in", "-o", "out", "--word-timestamps"])
    options = batch_cli_module._options(args)
    assert options.get("word_timestamps") is True and "token_timestamps" not in options
