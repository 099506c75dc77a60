"""Speech files for the batch tests: espeak-ng + sox sentences (bench/speech.py's
generator; without those tools, the same sentences cut out of the committed
tests/data/long_speech.ogg) laid out in sub-folders, jfk.wav, and a corrupt file."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Dict, List

import soundfile as sf

from _util import JFK_WAV, REPO

sys.path.insert(0, str(REPO / "bench"))
import speech  # noqa: E402  (bench/speech.py: espeak-ng + sox)

#: The corpus: output stem (relative path without suffix) -> (paragraph index or None for jfk, suffix).
LAYOUT = {
    "a/one": (0, ".wav"),
    "a/two": (1, ".flac"),
    "b/c/three": (2, ".wav"),
    "four": (3, ".wav"),
    "b/jfk": (None, ".wav"),
}
BROKEN = "b/broken.wav"


def _committed_phrase(para: int, dst: Path) -> None:
    """Without espeak-ng/sox: the same sentence cut out of tests/data/long_speech.ogg (made by
    make_long_speech.py from the same generator; its JSON says where each sentence is)."""
    import json

    import whisperx_native as wn

    data = REPO / "tests" / "data"
    spans = json.loads((data / "long_speech.json").read_text())["phrases"]
    span = next(p for p in spans if p["text"] == speech.PARAGRAPHS[para])
    audio = wn.load_audio(data / "long_speech.ogg")
    a, b = int(max(0.0, span["start"] - 0.3) * 16000), int((span["end"] + 0.3) * 16000)
    sf.write(str(dst), audio[a:b], 16000, subtype="PCM_16")


def make_corpus(root: Path) -> Dict[str, Path]:
    """Write the corpus under ``root``; returns stem -> file (the broken file under key ``BROKEN``)."""
    tts = shutil.which("espeak-ng") is not None and shutil.which("sox") is not None
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for stem, (para, suffix) in LAYOUT.items():
        dst = root / (stem + suffix)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if para is None:
            shutil.copy(JFK_WAV, dst)
        elif not tts:
            _committed_phrase(para, dst)
        else:
            voice, speed = speech.VOICES[para % len(speech.VOICES)]
            wav = dst.with_suffix(".tts.wav")
            speech._tts(speech.PARAGRAPHS[para], voice, speed, wav)
            if suffix == ".wav":
                wav.rename(dst)
            else:
                data, rate = sf.read(str(wav), dtype="int16")
                sf.write(str(dst), data, rate)
                wav.unlink()
        files[stem] = dst
    broken = root / BROKEN
    broken.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(40)))  # a WAV header that lies
    files[BROKEN] = broken
    (root / "b" / "notes.txt").write_text("not audio: a directory search skips it\n")
    return files


def copies(src: List[Path], root: Path, n: int) -> List[Path]:
    """``n`` files under ``root`` cycling through ``src`` (hard links where possible)."""
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        s = src[i % len(src)]
        dst = root / f"f{i:03d}{s.suffix}"
        try:
            dst.hardlink_to(s)
        except OSError:
            shutil.copy(s, dst)
        out.append(dst)
    return out

