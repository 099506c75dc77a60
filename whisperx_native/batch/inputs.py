"""Which files a batch transcribes, and where each one's outputs go.

An input is a file, a directory (searched recursively for audio and video files), a
glob pattern (``**`` recurses), or ``@list.txt``: a text file with one input per line
(blank lines and lines starting with ``#`` are ignored; each line may itself be a
file, directory or pattern). Outputs mirror the input's sub-folders: the files under
``archive/`` go to ``OUT/2019/jan/talk.json`` for ``archive/2019/jan/talk.wav``; for a
pattern, relative to the pattern's fixed leading folders; an explicit file goes to
``OUT/NAME.FMT``. Two inputs that would share an output (``talk.wav`` and
``talk.mp3`` in one folder) get ``talk`` and ``talk-2``, in the order the inputs are
listed (directories sorted), so a second run over the same inputs names them the same.
"""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple, Union

from ..errors import OptionError

__all__ = ["AUDIO_EXTENSIONS", "Item", "expand_inputs", "outputs_complete", "output_parses"]

#: What a directory search picks up: audio libsndfile reads, and the containers FFmpeg (the av extra) reads.
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".caf", ".w64",
    ".wv", ".spx", ".m4a", ".m4b", ".aac", ".ac3", ".amr", ".wma", ".mka", ".mp2",
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".flv", ".mpg", ".mpeg", ".ts", ".3gp",
})

_MAGIC = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Item:
    """One input file: its path (as found) and its output stem relative to the output
    directory (``sub/dir/name``, without a format suffix)."""

    path: str
    stem: str
    size: int = 0

    def outputs(self, out_dir: Union[str, os.PathLike], formats: Sequence[str]) -> List[Path]:
        base = Path(out_dir) / self.stem
        return [base.with_name(f"{base.name}.{fmt}") for fmt in formats]


def _is_audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS and not path.name.startswith(".")


def _walk(directory: Path) -> Iterable[Path]:
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            p = Path(root) / name
            if _is_audio(p):
                yield p


def _glob_base(pattern: str) -> Path:
    """The folders of ``pattern`` before its first wildcard."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if _MAGIC.search(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _expand_one(arg: str, seen_lists: set) -> Iterable[Tuple[Path, Path]]:
    """(file, its output stem) for one input argument."""
    if arg.startswith("@"):
        listing = Path(arg[1:])
        key = listing.resolve()
        if key in seen_lists:
            return
        seen_lists.add(key)
        try:
            lines = listing.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise OptionError(f"cannot read the input list {listing}: {exc.strerror or exc}") from None
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                yield from _expand_one(line, seen_lists)
        return
    path = Path(arg)
    if path.is_dir():
        for f in _walk(path):
            yield f, f.relative_to(path).with_suffix("")
        return
    if path.exists():
        yield path, Path(path.stem or "audio")
        return
    if _MAGIC.search(arg):
        base = _glob_base(arg)
        matches = sorted(glob.glob(arg, recursive=True))
        for m in matches:
            p = Path(m)
            if p.is_dir():
                for f in _walk(p):
                    yield f, f.relative_to(base).with_suffix("")
            elif p.is_file() and not p.name.startswith("."):
                try:
                    rel = p.relative_to(base)
                except ValueError:
                    rel = Path(p.name)
                yield p, rel.with_suffix("")
        return
    # A missing file is still an input: it fails (and is recorded) like a corrupt one.
    yield path, Path(path.stem or "audio")


def expand_inputs(inputs: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]]) -> List[Item]:
    """The files named by ``inputs`` (see the module doc), each once, with unique output stems."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    items: List[Item] = []
    seen_files: set = set()
    used: Dict[str, int] = {}
    seen_lists: set = set()
    for arg in inputs:
        for path, stem in _expand_one(os.fspath(arg), seen_lists):
            try:
                key = path.resolve()
            except OSError:
                key = path.absolute()
            if key in seen_files:
                continue
            seen_files.add(key)
            parts = [p for p in stem.parts if p not in ("..", ".", "/", stem.anchor)] or ["audio"]
            base = "/".join(parts)
            name, n = base, 1
            while name.lower() in used:  # case-insensitive: the output may be on such a filesystem
                n += 1
                name = f"{base}-{n}"
            used[name.lower()] = 1
            try:
                size = path.stat().st_size
            except OSError:
                size = 0
            items.append(Item(str(path), name, size))
    return items


# ---------------------------------------------------------------------------- resume
_SRT_CUE = re.compile(r"\A\d+\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n")


def output_parses(path: Path, fmt: str) -> bool:
    """True when ``path`` exists and reads back as a complete ``fmt`` file."""
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if fmt == "json":
        try:
            d = json.loads(text)
        except ValueError:
            return False
        return isinstance(d, dict) and isinstance(d.get("text"), str) and isinstance(d.get("segments"), list)
    if fmt == "srt":
        return text == "" or (bool(_SRT_CUE.match(text)) and text.endswith("\n\n"))
    if fmt == "vtt":
        return text.startswith("WEBVTT\n") and text.endswith("\n")
    if fmt == "tsv":
        return text.startswith("start\tend\ttext\n") and text.endswith("\n")
    if fmt == "txt":
        return text == "" or text.endswith("\n")
    return True


def outputs_complete(item: Item, out_dir: Union[str, os.PathLike], formats: Sequence[str]) -> bool:
    """Every output of ``item`` exists and parses: the file is done."""
    return all(output_parses(p, fmt) for p, fmt in zip(item.outputs(out_dir, formats), formats))

