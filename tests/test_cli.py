"""The command line, end to end in a subprocess on real audio and a real model."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import srt
import webvtt

from _util import JFK_TEXT, JFK_WAV, normalize

JFK_SECONDS = 11.0


def cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m whisperx_native ARGS`` outside the checkout (the installed package)."""
    proc = subprocess.run([sys.executable, "-m", "whisperx_native", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=tempfile.gettempdir())
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def api_text(tiny) -> str:
    """What the Python API says for jfk.wav with the CLI's defaults."""
    text = tiny.transcribe(JFK_WAV).text
    assert normalize(text) == normalize(JFK_TEXT)
    return text


def _spans_ok(spans, duration=JFK_SECONDS):
    prev = 0.0
    for start, end in spans:
        assert prev - 1e-3 <= start <= end <= duration + 1e-3, (prev, start, end)
        prev = end
    return bool(spans)


def test_every_output_format_parses_back_and_matches_the_api(tiny_en_ggml, tmp_path, api_text):
    out = tmp_path / "out"
    proc = cli("transcribe", JFK_WAV, "--model", tiny_en_ggml, "--output-format", "all",
               "--output-dir", out, "--word-timestamps")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["jfk.json", "jfk.srt", "jfk.tsv", "jfk.txt", "jfk.vtt"]
    want = normalize(api_text)

    assert normalize((out / "jfk.txt").read_text()) == want

    subs = list(srt.parse((out / "jfk.srt").read_text()))
    assert _spans_ok([(s.start.total_seconds(), s.end.total_seconds()) for s in subs])
    assert normalize(" ".join(s.content for s in subs)) == want

    vtt = (out / "jfk.vtt").read_text()
    assert vtt.startswith("WEBVTT")
    cues = webvtt.from_string(vtt).captions
    assert _spans_ok([(c.start_in_seconds + c.start_time.milliseconds / 1000,
                       c.end_in_seconds + c.end_time.milliseconds / 1000) for c in cues])
    assert normalize(" ".join(c.text for c in cues)) == want

    with open(out / "jfk.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert _spans_ok([(int(r["start"]) / 1000, int(r["end"]) / 1000) for r in rows])
    assert normalize(" ".join(r["text"] for r in rows)) == want

    d = json.loads((out / "jfk.json").read_text())
    assert normalize(d["text"]) == want and d["language"] == "en"
    assert d["source"] == str(JFK_WAV) and d["model"] == str(tiny_en_ggml)
    assert d["build"]["whisper_cpp"] == "1.8.5" and "compiler" in d["build"]
    assert d["timings"]["audio_seconds"] == pytest.approx(JFK_SECONDS, abs=0.01)
    assert _spans_ok([(s["start"], s["end"]) for s in d["segments"]])
    words = [w for s in d["segments"] for w in s["words"]]
    assert _spans_ok([(w["start"], w["end"]) for w in words])
    assert normalize(" ".join(w["text"] for w in words)) == want
    assert all(0 < w["probability"] <= 1 for w in words)
    assert all(t["p"] >= 0 for s in d["segments"] for t in s["tokens"])

    # One summary line per file: duration and real-time factor.
    summary = proc.stderr.strip().splitlines()
    assert len(summary) == 1 and "11.0 s audio" in summary[0] and "real-time factor" in summary[0]


def test_stdout_json_and_the_console_script(tiny_en_ggml, api_text):
    script = Path(sys.executable).parent / "whisperx-native"
    proc = subprocess.run([str(script), "transcribe", str(JFK_WAV), "-m", str(tiny_en_ggml), "-f", "json", "-q"],
                          capture_output=True, text=True, timeout=300, cwd=tempfile.gettempdir())
    assert proc.returncode == 0, proc.stderr
    assert normalize(json.loads(proc.stdout)["text"]) == normalize(api_text)
    assert proc.stderr == ""


def test_44k_stereo_and_a_corrupt_file_among_good_ones(tiny_en_ggml, tmp_path, jfk_samples, api_text):
    stereo = soxr.resample(jfk_samples, 16000, 44100)
    sf.write(str(tmp_path / "stereo44k.wav"), np.stack([stereo, 0.5 * stereo], axis=1), 44100)
    (tmp_path / "corrupt.mp3").write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 40)
    files = [JFK_WAV, tmp_path / "corrupt.mp3", tmp_path / "stereo44k.wav", tmp_path / "missing.flac"]
    out = tmp_path / "out"
    proc = cli("transcribe", *files, "-m", tiny_en_ggml, "-o", out, "-f", "txt")
    assert proc.returncode == 1, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["jfk.txt", "stereo44k.txt"]
    assert normalize((out / "stereo44k.txt").read_text()) == normalize(api_text)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert "corrupt.mp3" in errors[0] and "missing.flac: cannot open" in errors[1]
    assert "Traceback" not in proc.stderr and "2 of 4 files failed" in proc.stderr

    verbose = cli("transcribe", tmp_path / "corrupt.mp3", "-m", tiny_en_ggml, "-q", "--verbose")
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr and "AudioError" in verbose.stderr


def test_progress_bar_on_long_files_only_and_not_when_quiet(tiny_en_ggml, tmp_path, long_samples):
    sf.write(str(tmp_path / "long.wav"), long_samples, 16000)
    proc = cli("transcribe", tmp_path / "long.wav", JFK_WAV, "-m", tiny_en_ggml, "--preset", "fast")
    assert proc.returncode == 0, proc.stderr
    bars = [line for line in proc.stderr.replace("\r", "\n").splitlines() if "%|" in line]
    assert bars and all(line.startswith("long.wav:") for line in bars)   # none for the 11 s file
    assert any(" 100%|" in line for line in bars)
    assert normalize(proc.stdout).count(normalize(JFK_TEXT)) == 5

    quiet = cli("transcribe", tmp_path / "long.wav", "-m", tiny_en_ggml, "--preset", "fast", "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert normalize(quiet.stdout).count(normalize(JFK_TEXT)) == 4


def test_same_names_from_two_folders_do_not_overwrite(tiny_en_ggml, tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "talk.wav").write_bytes(JFK_WAV.read_bytes())
    out = tmp_path / "out"
    proc = cli("transcribe", tmp_path / "a" / "talk.wav", tmp_path / "b" / "talk.wav", "-m", tiny_en_ggml,
               "-o", out, "-f", "srt", "--preset", "fast", "-q")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["talk-2.srt", "talk.srt"]


def test_vad_flag(tiny_en_ggml):
    proc = cli("transcribe", JFK_WAV, "-m", tiny_en_ggml, "--vad", "-q")
    assert proc.returncode == 0 and normalize(proc.stdout) == normalize(JFK_TEXT), proc.stderr


@pytest.mark.parametrize("args, code, message", [
    (["transcribe", JFK_WAV, "-m", "/nowhere/ggml-x.bin"], 2, "model file not found: /nowhere/ggml-x.bin"),
    (["transcribe", JFK_WAV, "-m", "no-such-model"], 2, "unknown model 'no-such-model'"),
    (["transcribe", JFK_WAV, "-f", "docx"], 2, "unknown format"),
    (["transcribe", JFK_WAV, "--threads", "0"], 2, "must be 1 or more"),
    (["transcribe"], 2, "FILE"),
    (["frobnicate"], 2, "invalid choice"),
])
def test_usage_errors_are_one_clear_line(args, code, message):
    proc = cli(*args)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_bad_options_stop_before_touching_every_file(tiny_en_ggml, tmp_path):
    proc = cli("transcribe", JFK_WAV, JFK_WAV, "-m", tiny_en_ggml, "--language", "de", "-o", tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("English-only") == 1 and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_info():
    proc = cli("info")
    assert proc.returncode == 0, proc.stderr
    for key in ("whisper.cpp", "1.8.5", "compiler", "CPU features", "CUDA / Metal / Vulkan", "libsndfile", "soxr"):
        assert key in proc.stdout, key
    d = json.loads(cli("info", "--json").stdout)
    assert d["whisper_cpp"] == "1.8.5" and isinstance(d["cpu_features"], list) and d["cpu_features"]
    assert {"cuda", "metal", "vulkan", "amx_disabled_for_gcc", "compiler"} <= set(d)
    assert d["audio"]["soundfile"] and d["audio"]["soxr"] and d["audio"]["av"]


def test_models_subcommand_is_wired_when_the_store_provides_it():
    from whisperx_native import cli as cli_module

    models_cli = cli_module._models_cli()
    help_text = cli("--help").stdout
    if models_cli is None:
        assert " models " not in help_text
    else:
        assert "models" in help_text
        assert cli("models", "--help").returncode == 0
