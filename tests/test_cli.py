"""The command line, end to end in a subprocess on real audio and a real model."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional, Tuple

import numpy as np
import pytest
import soundfile as sf
import soxr
import srt
import webvtt

from _util import JFK_TEXT, JFK_WAV, default_sigint, normalize

JFK_SECONDS = 11.0


def cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m whisperx_native ARGS`` outside the checkout (the installed package)."""
    proc = subprocess.run([sys.executable, "-m", "whisperx_native", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=tempfile.gettempdir())
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}\n{proc.stderr[-3000:]}"
    return proc


class TtyRun(NamedTuple):
    returncode: int
    stdout: str
    stderr: str
    lines: List[Tuple[float, str]]   # stdout lines with the time each arrived (time.monotonic())
    ended: float                     # when the process was seen to exit
    signalled: Optional[float]       # when SIGINT was sent (on_line returned True)


def cli_tty(*args, stdout_tty: bool = False, stderr_tty: bool = False, stdin=subprocess.DEVNULL,
            on_line: Optional[Callable[[str], bool]] = None, timeout: float = 300) -> TtyRun:
    """``cli`` with stdout and/or stderr on a pseudo-terminal, as in an interactive shell.
    ``on_line(line)`` sees each stdout line as it arrives; returning True sends SIGINT."""
    masters, ends = {}, {}
    for name, tty in (("stdout", stdout_tty), ("stderr", stderr_tty)):
        if tty:
            masters[name], ends[name] = pty.openpty()
            fcntl.ioctl(ends[name], termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))   # a real one's size
        else:
            ends[name] = subprocess.PIPE
    proc = subprocess.Popen([sys.executable, "-m", "whisperx_native", *map(str, args)], stdin=stdin,
                            stdout=ends["stdout"], stderr=ends["stderr"], cwd=tempfile.gettempdir(),
                            preexec_fn=default_sigint)
    for name in masters:
        os.close(ends[name])
    chunks: dict = {"stdout": [], "stderr": []}

    def reader(name):
        fd = masters[name] if name in masters else getattr(proc, name).fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the terminal's other side closed
                break
            if not data:
                break
            chunks[name].append((time.monotonic(), data))

    threads = [threading.Thread(target=reader, args=(n,), daemon=True) for n in chunks]
    for t in threads:
        t.start()
    lines: List[Tuple[float, str]] = []
    signalled = None
    buf, seen = b"", 0
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
        new = chunks["stdout"][seen:]
        seen += len(new)
        for t_arrived, data in new:
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode("utf-8", "replace").rstrip("\r")
                lines.append((t_arrived, text))
                if signalled is None and on_line is not None and on_line(text):
                    proc.send_signal(signal.SIGINT)
                    signalled = time.monotonic()
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    ended = time.monotonic()
    for t in threads:
        t.join(5)
    for fd in masters.values():
        os.close(fd)
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}"
    text = {n: b"".join(d for _t, d in c).decode("utf-8", "replace").replace("\r\n", "\n") for n, c in chunks.items()}
    return TtyRun(proc.returncode, text["stdout"], text["stderr"], lines, ended, signalled)


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
    assert sorted(p.name for p in out.iterdir()) == ["jfk.csv", "jfk.json", "jfk.srt", "jfk.tsv", "jfk.txt",
                                                     "jfk.vtt"]
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

    with open(out / "jfk.csv", newline="") as f:  # whisper-cli's -ocsv
        rows = list(csv.DictReader(f))
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


def test_the_command_starts_no_blas_threads():
    # The command never calls BLAS, so numpy's OpenBLAS threads would only spin at start-up
    # (~0.07 cpu-s): the entry point (__main__.run, also the console script's) asks for one
    # unless the user chose a count.
    code = ("import os, sys\nimport whisperx_native.__main__ as entry\nsys.argv = ['whisperx-native', 'info']\n"
            "rc = entry.run()\nprint(rc, len(os.listdir('/proc/self/task')), os.environ['OPENBLAS_NUM_THREADS'])")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         cwd=tempfile.gettempdir()).stdout.split()
    assert out[-3:] == ["0", "1", "1"]  # exit 0, the main thread alone
    env["OPENBLAS_NUM_THREADS"] = "2"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         cwd=tempfile.gettempdir()).stdout.split()
    assert out[-3:][0] == "0" and out[-1] == "2"


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


def test_progress_bar_on_long_files_only_on_a_terminal_and_not_when_quiet(tiny_en_ggml, tmp_path, long_samples):
    sf.write(str(tmp_path / "long.wav"), long_samples, 16000)
    args = ("transcribe", tmp_path / "long.wav", JFK_WAV, "-m", tiny_en_ggml, "--preset", "fast")
    run = cli_tty(*args, stderr_tty=True)
    assert run.returncode == 0, run.stderr
    bars = [line for line in run.stderr.replace("\r", "\n").splitlines() if "%|" in line]
    assert bars and all(line.startswith("long.wav:") for line in bars)   # none for the 11 s file
    assert any(" 100%|" in line for line in bars)
    assert normalize(run.stdout).count(normalize(JFK_TEXT)) == 5

    # stderr to a file or pipe (2>log): the summary lines only, no \r frames of a bar.
    logged = cli(*args)
    assert logged.returncode == 0 and "\r" not in logged.stderr and "%|" not in logged.stderr
    assert [line.split(":")[0] for line in logged.stderr.splitlines()] == [str(tmp_path / "long.wav"), str(JFK_WAV)]

    quiet = cli_tty("transcribe", tmp_path / "long.wav", "-m", tiny_en_ggml, "--preset", "fast", "--quiet",
                    stderr_tty=True)
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


def test_every_subcommand_is_wired():
    help_text = cli("--help").stdout
    for command in ("transcribe", "models", "batch", "convert", "info"):
        assert command in help_text
        assert cli(command, "--help").returncode == 0


def test_the_conversion_commands_share_one_overwrite_flag(tiny_en_ct2_dir, tmp_path):
    """--overwrite everywhere (the API's keyword, as batch's), --force the alias of the main
    CLI's old spelling, -f the module's old short form."""
    dst = tmp_path / "t.bin"
    assert cli("convert", tiny_en_ct2_dir, dst).returncode == 0
    taken = cli("convert", tiny_en_ct2_dir, dst)
    assert taken.returncode != 0 and "already exists" in taken.stderr
    for flag in ("--overwrite", "--force"):
        assert cli("convert", tiny_en_ct2_dir, dst, flag).returncode == 0
    from whisperx_native.convert.__main__ import main as convert_main

    for flag in ("--overwrite", "--force", "-f"):
        assert convert_main([str(tiny_en_ct2_dir), str(dst), flag]) == 0
    assert "--overwrite" in cli("convert", "--help").stdout


# ---------------------------------------------------------------------------- habits of other tools (issue 16)
LONG_SPEECH = Path(__file__).resolve().parent / "data" / "long_speech.ogg"   # 131 s: several seconds of work


def test_several_files_to_stdout_json_lines_txt_headers_or_a_pointer_to_o(tiny_en_ggml, tmp_path, api_text):
    second = tmp_path / "second.wav"
    second.write_bytes(JFK_WAV.read_bytes())
    proc = cli("transcribe", JFK_WAV, second, "-m", tiny_en_ggml, "-f", "json", "-q")
    assert proc.returncode == 0, proc.stderr
    docs = [json.loads(line) for line in proc.stdout.splitlines()]   # JSON Lines: one object per file
    assert [d["source"] for d in docs] == [str(JFK_WAV), str(second)]
    assert all(normalize(d["text"]) == normalize(api_text) for d in docs)
    tool = subprocess.run([sys.executable, "-m", "json.tool", "--json-lines"], input=proc.stdout,
                          capture_output=True, text=True)
    assert tool.returncode == 0, tool.stderr

    txt = cli("transcribe", JFK_WAV, second, "-m", tiny_en_ggml, "-q", "--preset", "fast")
    assert txt.returncode == 0, txt.stderr
    assert [line for line in txt.stdout.splitlines() if line.startswith("==>")] == \
        [f"==> {JFK_WAV} <==", f"==> {second} <=="]
    assert normalize(txt.stdout).count(normalize(JFK_TEXT)) == 2

    for fmt in ("srt", "vtt", "tsv", "csv"):   # documents that would run together: ask for -o, touch nothing
        proc = cli("transcribe", JFK_WAV, second, "-m", tiny_en_ggml, "-f", fmt)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.startswith("error: ") and "-o DIR" in proc.stderr and len(proc.stderr.splitlines()) == 1
    mixed = cli("transcribe", JFK_WAV, "-m", tiny_en_ggml, "-f", "txt,srt")
    assert mixed.returncode == 2 and mixed.stdout == "" and "stdout takes one format" in mixed.stderr


def _closed_pipe():
    """The write end of a pipe whose reader is already gone."""
    r, w = os.pipe()
    os.close(r)
    return w


@pytest.mark.parametrize("args", [["models", "list", "--available", "--json"], ["info", "--json"]])
def test_a_closed_stdout_ends_other_commands_quietly(args):
    w = _closed_pipe()
    try:
        proc = subprocess.run([sys.executable, "-m", "whisperx_native", *args], stdout=w, stderr=subprocess.PIPE,
                              text=True, timeout=120, cwd=tempfile.gettempdir())
    finally:
        os.close(w)
    assert proc.returncode == 141 and proc.stderr == ""


def test_a_closed_stdout_ends_a_transcription_at_once_and_quietly(tiny_en_ggml):
    w = _closed_pipe()
    try:
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "whisperx_native", "transcribe", LONG_SPEECH, LONG_SPEECH,
                               LONG_SPEECH, "-m", tiny_en_ggml], stdout=w, stderr=subprocess.PIPE, text=True,
                              timeout=300, cwd=tempfile.gettempdir())
        took = time.monotonic() - t0
    finally:
        os.close(w)
    assert proc.returncode == 141 and proc.stderr == ""   # nothing transcribed, nothing said
    assert took < 20, took

    # The shell's `| head -2`: the first file's header and first line, then a quiet end: no
    # "Broken pipe" per file, no whisper.cpp line about the cancelled run.
    script = (f"set -o pipefail; {sys.executable} -m whisperx_native transcribe {JFK_WAV} {JFK_WAV} {JFK_WAV} "
              f"-m {tiny_en_ggml} --preset fast | head -2")
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=tempfile.gettempdir())
    assert proc.returncode == 141, proc.stderr
    header, first = proc.stdout.splitlines()
    assert header == f"==> {JFK_WAV} <==" and normalize(JFK_TEXT).startswith(normalize(first))
    assert all(line.startswith(f"{JFK_WAV}: 11.0 s audio") for line in proc.stderr.splitlines()), proc.stderr
    assert 1 <= len(proc.stderr.splitlines()) <= 2   # summaries: the first file, at most the second


def test_ctrl_c_stops_within_the_bound_quietly_with_130(tiny_en_ggml):
    """SIGINT while whisper.cpp works (text is streaming to the terminal): exit 130 at once,
    nothing on stderr (no whisper.cpp abort line, no traceback)."""
    run = cli_tty("transcribe", LONG_SPEECH, "-m", tiny_en_ggml, stdout_tty=True,
                  on_line=lambda line: bool(line.strip()))
    assert run.signalled is not None, run.stderr
    latency = run.ended - run.signalled
    print(f"Ctrl-C to exit: {latency:.3f} s")
    assert run.returncode == 130, run.stderr
    assert run.stderr == ""
    assert latency <= 1.5, latency   # the target is 0.5 s; shared machines are slow now and then


def test_ctrl_c_leaves_no_partial_files(tiny_en_ggml, tmp_path):
    second = tmp_path / "second.ogg"
    second.write_bytes(LONG_SPEECH.read_bytes())
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "whisperx_native", "transcribe", str(LONG_SPEECH), str(second),
                             "-m", str(tiny_en_ggml), "-o", str(out), "-f", "txt,srt", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tempfile.gettempdir(),
                            preexec_fn=default_sigint)
    deadline = time.monotonic() + 240
    while not (out / "long_speech.srt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)   # the second file is being transcribed now
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    latency = time.monotonic() - t0
    print(f"Ctrl-C to exit: {latency:.3f} s")
    assert proc.returncode == 130, stderr
    assert stdout == "" and stderr == ""
    assert sorted(p.name for p in out.iterdir()) == ["long_speech.srt", "long_speech.txt"]   # no second.*, no temp
    assert latency <= 1.5, latency


def test_stdin_and_directories(tiny_en_ggml, tmp_path, api_text):
    with open(JFK_WAV, "rb") as f:
        proc = subprocess.run([sys.executable, "-m", "whisperx_native", "transcribe", "-", "-m", str(tiny_en_ggml),
                               "-f", "json", "-q"], stdin=f, capture_output=True, text=True, timeout=300,
                              cwd=tempfile.gettempdir())
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["source"] == "<stdin>" and normalize(d["text"]) == normalize(api_text)

    with open(JFK_WAV, "rb") as f:   # with -o: stdin.txt
        proc = subprocess.run([sys.executable, "-m", "whisperx_native", "transcribe", "-", "-m", str(tiny_en_ggml),
                               "-o", str(tmp_path / "o"), "-q", "--preset", "fast"], stdin=f, capture_output=True,
                              text=True, timeout=300, cwd=tempfile.gettempdir())
    assert proc.returncode == 0 and [p.name for p in (tmp_path / "o").iterdir()] == ["stdin.txt"], proc.stderr

    garbage = subprocess.run([sys.executable, "-m", "whisperx_native", "transcribe", "-", "-m", str(tiny_en_ggml)],
                             input=b"not audio" * 100, capture_output=True, timeout=300, cwd=tempfile.gettempdir())
    assert garbage.returncode == 1 and garbage.stderr.decode().startswith("error: <stdin>: ")

    root = tmp_path / "recordings"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / "b.wav").write_bytes(JFK_WAV.read_bytes())
    sf.write(str(root / "sub" / "a.flac"), sf.read(str(JFK_WAV))[0], 16000)
    (root / ".hidden" / "c.wav").write_bytes(JFK_WAV.read_bytes())
    (root / "notes.txt").write_text("not audio")
    proc = cli("transcribe", root, "-m", tiny_en_ggml, "-f", "json", "-q", "--preset", "fast")
    assert proc.returncode == 0, proc.stderr
    docs = [json.loads(line) for line in proc.stdout.splitlines()]   # a directory: JSON Lines, even of one file
    assert [d["source"] for d in docs] == [str(root / "b.wav"), str(root / "sub" / "a.flac")]
    assert all(normalize(d["text"]) == normalize(JFK_TEXT) for d in docs)

    (tmp_path / "empty").mkdir()
    proc = cli("transcribe", tmp_path / "empty", "-m", tiny_en_ggml)
    assert proc.returncode == 1 and "no audio or video files" in proc.stderr and "Is a directory" not in proc.stderr


def test_whisper_cli_spellings(tiny_en_ggml, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "whisperx_native", "transcribe", str(JFK_WAV),
                               "-m", str(tiny_en_ggml), "-q", "--preset", "fast", *args],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)

    proc = run("-osrt", "-ovtt", "-ocsv", "-o", "out")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["jfk.csv", "jfk.srt", "jfk.vtt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]   # no srt/ or vtt/ directory

    proc = run("-osrt", "-ovtt")   # whisper-cli would write files; here several formats need -o
    assert proc.returncode == 2 and "-o DIR" in proc.stderr and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    proc = run("-osrt")
    assert proc.returncode == 0 and proc.stdout.startswith("1\n00:00:00,000 --> "), proc.stderr
    proc = run("-oj")
    assert proc.returncode == 0 and json.loads(proc.stdout)["source"] == str(JFK_WAV)
    proc = run("-ojf")   # whisper-cli's full JSON: token times, so words here
    words = [w for seg in json.loads(proc.stdout)["segments"] for w in seg["words"]]
    assert proc.returncode == 0 and normalize(" ".join(w["text"] for w in words)) == normalize(JFK_TEXT)

    for args, message in [(["-o", "srt"], "use -f srt"), (["-o", "vtt"], "use -f vtt"), (["-olrc"], "LRC"),
                          (["-of", "x"], "-o DIR is a directory"), (["-f", str(JFK_WAV)], "-f sets the output format")]:
        proc = run(*args)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

    split = run("-ml", "16", "-sow")   # whisper-cli's --max-len / --split-on-word
    assert split.returncode == 0, split.stderr
    lines = split.stdout.splitlines()
    assert len(lines) >= 5 and all(len(line) <= 20 for line in lines), lines
    assert normalize(" ".join(lines)) == normalize(JFK_TEXT)


def test_openai_whisper_and_faster_whisper_spellings(tiny_en_ggml, base_ggml):
    proc = cli("transcribe", JFK_WAV, "-m", tiny_en_ggml, "--output_format", "json", "--word_timestamps", "True",
               "--temperature", "0.2", "--best_of", "2", "--beam_size", "1", "--condition_on_previous_text", "False",
               "--initial_prompt", "President Kennedy.", "-q")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert normalize(" ".join(w["text"] for s in d["segments"] for w in s["words"])) == normalize(JFK_TEXT)

    proc = cli("transcribe", JFK_WAV, "-m", tiny_en_ggml, "-f", "json", "--no-timestamps", "-q", "--preset", "fast")
    assert proc.returncode == 0, proc.stderr
    tokens = [t for s in json.loads(proc.stdout)["segments"] for t in s["tokens"]]
    assert tokens and all(t["start"] is None and t["end"] is None for t in tokens)   # not -0.01
    assert not any(t["text"].startswith("[_TT_") for t in tokens)

    proc = cli("transcribe", JFK_WAV, "-m", tiny_en_ggml, "--task", "translate")
    assert proc.returncode == 2 and "translate needs a multilingual" in proc.stderr
    proc = cli("transcribe", JFK_WAV, "-m", base_ggml, "--task", "translate", "-l", "en", "-q", "--preset", "fast")
    assert proc.returncode == 0 and normalize(proc.stdout) == normalize(JFK_TEXT), proc.stderr


def test_version_and_an_unknown_language_in_one_line():
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"whisperx-native {wn_version()} (whisper.cpp 1.8.5)"
    proc = cli("transcribe", JFK_WAV, "--language", "xx")
    assert proc.returncode == 2
    assert proc.stderr == "error: unknown language 'xx'; use a code like 'en', 'de', or 'auto'\n"


def wn_version() -> str:
    import whisperx_native

    return whisperx_native.__version__


def test_text_streams_to_a_terminal_as_it_is_decoded(tiny_en_ggml):
    run = cli_tty("transcribe", LONG_SPEECH, "-m", tiny_en_ggml, "--preset", "fast", "-q", stdout_tty=True)
    assert run.returncode == 0, run.stderr
    texts = [line for _t, line in run.lines if line.strip()]
    assert len(texts) > 5
    first = next(t for t, line in run.lines if line.strip())
    last = [t for t, line in run.lines if line.strip()][-1]
    print(f"first segment {run.ended - first:.2f} s before the end, last {run.ended - last:.2f} s")
    assert last - first > 0.5   # not all at once at the end
    # the same text as the txt output to a pipe
    piped = cli("transcribe", LONG_SPEECH, "-m", tiny_en_ggml, "--preset", "fast", "-q")
    assert piped.stdout.splitlines() == texts


def test_models_list_available_has_a_header_marks_installed_and_aligns(tiny_en_ggml, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    os.link(tiny_en_ggml, cache / "ggml-tiny.en.bin")
    proc = cli("models", "list", "--available", "--cache", cache)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = lines[0].split()
    assert header[:4] == ["name", "type", "size", "needs"] and "installed" in header
    rows = {line.split()[0]: line for line in lines[1:] if line and not line.startswith("size:")}
    assert rows["tiny.en"].split()[header.index("installed") + 2] == "yes"   # +2: the two "MB" units
    assert rows["tiny"].split()[header.index("installed") + 2] == "-"
    # every row's size column ends at the same place, bf16+q8_0 rows included
    ends = {line.index(" MB") for line in rows.values()}
    assert len(ends) == 1, ends
    d = json.loads(cli("models", "list", "--available", "--json", "--cache", cache).stdout)
    assert {r["name"]: r["installed"] for r in d}["tiny.en"] is True
