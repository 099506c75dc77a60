"""whisper.cpp's log goes to Python logging; build facts; thread defaults; the README's promises."""

from __future__ import annotations

import platform
import re

import whisperx_native as wn
from whisperx_native.threads import cpu_count, default_threads
from _util import REPO, run_python


def test_native_log_goes_to_python_logging_not_stderr(tiny_en_ggml):
    code = f"""
    import logging, sys
    records = []
    class H(logging.Handler):
        def emit(self, r):
            records.append((r.name, r.getMessage()))
    logging.getLogger("whisperx_native").addHandler(H())
    logging.getLogger("whisperx_native").setLevel(logging.INFO)
    import whisperx_native as wn
    m = wn.Model({str(tiny_en_ggml)!r})
    m.close()
    names = {{n for n, _ in records}}
    print(len(records), sorted(names))
    print(any("whisper_model_load" in msg for _, msg in records))
    """
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert "whisper_model_load" not in proc.stderr and "ggml" not in proc.stderr
    count, flag = proc.stdout.strip().splitlines()[-2:]
    assert int(count.split()[0]) > 10 and "whisperx_native.native" in count
    assert flag == "True"


def test_build_info():
    info = wn.build_info()
    assert info["whisper_cpp"] == "1.8.5"
    assert info["compiler"]
    assert isinstance(info["amx_disabled_for_gcc"], bool)
    assert "AVX" in info["system_info"] or "NEON" in info["system_info"]
    gcc = re.match(r"GNU (\d+)", info["compiler"])
    if gcc and int(gcc.group(1)) < 13 and platform.machine().lower() in ("x86_64", "amd64"):
        assert info["amx_disabled_for_gcc"] is True
        assert "AMX_INT8 = 1" not in info["system_info"]


def test_default_threads_are_at_most_four_and_the_cores(tiny_en_ggml, caplog):
    assert default_threads() == min(4, cpu_count())
    with wn.Model(tiny_en_ggml, n_threads=cpu_count() + 3) as m:
        assert m.n_threads == cpu_count()
    assert "more than the" in caplog.text


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    commands = re.findall(r"```bash\n(.+?)\n```", readme)
    test_cmd = [c for c in commands if c.rstrip().endswith("pytest")]
    assert len(test_cmd) == 1, commands
    assert test_cmd[0] in ci.splitlines()
