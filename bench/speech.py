"""Benchmark audio: a >= 3-minute file of varied synthetic speech with pauses, plus jfk.

Synthesised with Debian's espeak-ng (several voices and speeds) and resampled to 16 kHz
mono with sox; the sentences are all different so whisper's repetition and fallback
heuristics see ordinary speech. Built once into a cache directory.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO / "tests"))
from _util import normalize  # noqa: E402,F401 - the tests' transcript normalisation, for WER here too
JFK_WAV = REPO / "vendor" / "whisper.cpp" / "samples" / "jfk.wav"
JFK_TEXT = ("And so my fellow Americans ask not what your country can do for you, "
            "ask what you can do for your country.")

PARAGRAPHS = [
    "The morning train to the coast was late again, so most of the passengers stood on the platform "
    "reading the paper and drinking coffee from paper cups.",
    "Please remember to send the quarterly report to the finance team before Friday afternoon, "
    "and copy me on the message.",
    "The museum opens at nine o'clock and closes at six, except on public holidays, when it stays "
    "closed all day.",
    "A small red boat drifted slowly across the lake while two children watched from the wooden pier.",
    "Our new laptop battery lasts almost eleven hours, which is enough for a long flight across the ocean.",
    "The recipe calls for two cups of flour, three eggs, a pinch of salt and a little warm milk.",
    "When the storm finally passed, the neighbours came out to clear the fallen branches from the road.",
    "The committee will vote on the proposal next Tuesday after a short public hearing in the town hall.",
    "She practised the piano every evening, and by the end of the winter she could play the whole sonata.",
    "Scientists measured the temperature of the river at twelve points between the mountains and the sea.",
    "If the printer jams again, open the side panel, remove the paper carefully and restart the machine.",
    "The library has extended its opening hours so that students can study late during the exam period.",
    "Fresh vegetables from the market taste better than the ones that travel for weeks in a refrigerated truck.",
    "He packed a warm jacket, a map of the valley and enough water for a full day of walking in the hills.",
    "The software update fixes several security problems and makes the application start twice as fast.",
    "At the end of the concert the audience stood up and applauded for several minutes.",
    "The bakery on the corner sells bread that is still warm when the first customers arrive at dawn.",
    "Traffic on the bridge was slow because one lane was closed for repairs until the end of the month.",
    "The old lighthouse has guided ships safely into the harbour for more than one hundred years.",
    "Before the meeting starts, please check that the projector works and that everyone has a copy of the agenda.",
]
VOICES = [("en-us", 165), ("en", 150), ("en-us", 140), ("en", 175)]
SR = 16000


def _tts(text: str, voice: str, speed: int, out: Path) -> None:
    raw = out.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True,
                   capture_output=True)
    subprocess.run(["sox", str(raw), "-r", str(SR), "-c", "1", "-b", "16", str(out)], check=True,
                   capture_output=True)
    raw.unlink()


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == SR and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def write_pcm16(path: Path, data: np.ndarray) -> None:
    """16 kHz mono 16-bit WAV of int16 ``data``, written beside and renamed into place."""
    tmp = path.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(np.asarray(data, dtype="<i2").tobytes())
    tmp.replace(path)


def read_audio(path: Path) -> np.ndarray:
    """A 16 kHz mono 16-bit WAV as float32 in [-1, 1): what every runner gets."""
    return (_read(Path(path)).astype(np.float32) / 32768.0)


def build_long_speech(cache: Path, min_seconds: float = 190.0) -> tuple[Path, str]:
    """Write ``long_speech.wav`` (>= min_seconds) and return it with its reference text."""
    cache.mkdir(parents=True, exist_ok=True)
    wav, ref = cache / "long_speech.wav", cache / "long_speech.txt"
    if wav.exists() and ref.exists():
        return wav, ref.read_text()
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is needed to build the benchmark audio (apt-get install espeak-ng sox)")
    jfk = _read(JFK_WAV)
    pieces, texts = [], []
    rng = np.random.default_rng(7)
    i = 0
    while sum(p.size for p in pieces) < min_seconds * SR:
        if i % 7 == 3:
            pieces.append(jfk)
            texts.append(JFK_TEXT)
        else:
            voice, speed = VOICES[i % len(VOICES)]
            part = cache / f"part{i}.wav"
            _tts(PARAGRAPHS[i % len(PARAGRAPHS)], voice, speed, part)
            pieces.append(_read(part))
            texts.append(PARAGRAPHS[i % len(PARAGRAPHS)])
            part.unlink()
        pause = rng.uniform(0.4, 2.5)  # pauses, some long enough to be silence
        pieces.append(np.zeros(int(pause * SR), dtype="<i2"))
        i += 1
    write_pcm16(wav, np.concatenate(pieces))
    ref.write_text(" ".join(texts))
    return wav, ref.read_text()


def build_short_utterance(cache: Path) -> tuple[Path, str]:
    """A dictation-sized utterance (< 10 s)."""
    cache.mkdir(parents=True, exist_ok=True)
    wav = cache / "short_utterance.wav"
    text = "Remind me to call the dentist tomorrow morning at ten."
    if not wav.exists():
        _tts(text, "en-us", 160, wav)
    return wav, text
