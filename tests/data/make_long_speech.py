"""Build tests/data/long_speech.ogg (+ .txt, .json): ~2.5 minutes of speech with pauses and silence.

Run once by hand (needs espeak-ng and sox, as bench/speech.py does); the result is
committed, so the tests need neither:

    python tests/data/make_long_speech.py

Layout: sentences in several synthetic voices separated by pauses of 0.3-2.5 s,
jfk.wav once, a 6 s stretch of digital silence, a 5 s stretch of faint noise (no
speech: nothing may be transcribed there), and one 18 s run of three sentences
without a pause, longer than a streaming window, so the stream has to cut inside
speech. The .json file lists where each sentence starts and ends (seconds), which
the latency benchmark uses.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "bench"))

import speech  # noqa: E402  (bench/speech.py: espeak-ng + sox generators)

SR = speech.SR
OUT = HERE / "long_speech.ogg"


def main() -> None:
    rng = np.random.default_rng(5)
    pieces, texts, spans = [], [], []
    pos = 0

    def add(samples: np.ndarray, text: str = "") -> None:
        nonlocal pos
        x = samples.astype(np.float32) / 32768.0 if samples.dtype == np.int16 else samples.astype(np.float32)
        if text:
            texts.append(text)
            loud = np.flatnonzero(np.abs(x) > 0.01)  # the voice itself, not the synthesizer's silent edges
            spans.append({"text": text, "start": round((pos + loud[0]) / SR, 3),
                          "end": round((pos + loud[-1] + 1) / SR, 3)})
        pieces.append(x)
        pos += x.size

    def pause(seconds: float) -> None:
        add(np.zeros(int(seconds * SR), np.float32))

    with tempfile.TemporaryDirectory() as tmp:
        def tts(i: int) -> np.ndarray:
            voice, speed = speech.VOICES[i % len(speech.VOICES)]
            part = Path(tmp) / f"p{i}.wav"
            speech._tts(speech.PARAGRAPHS[i], voice, speed, part)
            return speech._read(part)

        pause(1.0)
        for i in range(0, 5):
            add(tts(i), speech.PARAGRAPHS[i])
            pause(rng.uniform(0.3, 2.5))
        pause(6.0)                                             # digital silence
        add(speech._read(speech.JFK_WAV), speech.JFK_TEXT)
        pause(1.0)
        add((rng.standard_normal(5 * SR) * 0.003).astype(np.float32))  # faint noise, no speech
        pause(0.5)
        for i in (5, 6, 7):                                    # one 18 s run without pauses
            add(tts(i), speech.PARAGRAPHS[i])
        pause(1.5)
        for i in range(8, 14):
            add(tts(i), speech.PARAGRAPHS[i])
            pause(rng.uniform(0.3, 2.5))
        pause(1.0)

    audio = np.concatenate(pieces)
    # Block by block: libsndfile's Vorbis encoder crashes on one very large write.
    with sf.SoundFile(str(OUT), "w", SR, 1, format="OGG", subtype="VORBIS") as f:
        for i in range(0, audio.size, 8192):
            f.write(audio[i:i + 8192])
    OUT.with_suffix(".txt").write_text(" ".join(texts) + "\n")
    OUT.with_suffix(".json").write_text(json.dumps({"seconds": round(audio.size / SR, 2), "phrases": spans},
                                                    indent=1) + "\n")
    print(f"{OUT}: {audio.size / SR:.1f} s, {OUT.stat().st_size / 1024:.0f} KB, {len(spans)} phrases")


if __name__ == "__main__":
    main()
