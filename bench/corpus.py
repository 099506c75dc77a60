"""Speech sets for the default-decoder race (bench/default_race.py), synthesised here.

Debian's espeak-ng speaks every sentence with one of several voices, rates and pitches; sox
makes 16 kHz mono from it. Three sets, built once into a cache directory:

* ``long_a.wav`` / ``long_b.wav``: >= 4 minutes each of different sentences with pauses of
  0.2-2.5 s (some under a second, so voice activity detection cannot cut everywhere), a
  little background noise in places, and jfk.wav once; a JSON file beside each gives every
  sentence's text and its speech start / end in the file (to ~10 ms: the synthesised
  sentence is trimmed of its own silence before it is placed).
* ``utt_NN.wav``: single sentences (dictation-sized clips), with their text.

Everything is seeded: the same files on every machine with the same espeak-ng.

Beside them, :func:`real_speech`: recordings of people, for what synthetic speech cannot
show — the test recordings of pocketsphinx 5.0.3's source package on PyPI (five LibriVox
sentences of *Sense and Sensibility*, five spoken card names), checked by hash.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import wave
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from speech import JFK_TEXT, JFK_WAV, PARAGRAPHS, write_pcm16

SR = 16000
#: Where the standalone benches (default_race, word_timing, busy_machine, long_file_memory) keep
#: the corpus they build; bench/test_bench.py's runs keep theirs under build/.
CACHE = Path(os.environ.get("WHISPERX_NATIVE_BENCH_CACHE", Path.home() / ".cache" / "whisperx_native-bench"))

MORE = [
    "The weather service expects heavy rain in the northern valleys by the end of the week.",
    "Our team will present the results of the survey at the conference in early spring.",
    "Please leave your shoes at the door and hang your coat on the hook in the hall.",
    "The river flooded the lower fields twice this year, and the farmers lost most of their crops.",
    "A good night's sleep helps the brain store what it learned during the day.",
    "The new bicycle lanes have made the city centre much safer for children on their way to school.",
    "When the power went out, we lit candles and played cards until midnight.",
    "The recipe for the soup was handed down from my grandmother, who learned it in a village kitchen.",
    "Most of the paintings in the gallery were donated by a collector who lived in the house next door.",
    "The pilot announced that we would land twenty minutes early thanks to a strong tail wind.",
    "Remember to water the tomatoes every morning while the weather stays this hot and dry.",
    "The engineers tested the bridge with heavy trucks before they opened it to the public.",
    "His favourite book tells the story of a sailor who spends a year alone on a tiny island.",
    "The hospital is looking for volunteers who can read to patients in the afternoon.",
    "We stopped at a small cafe by the road and ordered sandwiches and a pot of tea.",
    "The students built a simple robot that can sort coloured blocks into separate boxes.",
    "After years of careful work, the old theatre finally opened its doors again last autumn.",
    "The mountain path is steep and narrow, so hikers should wear strong boots and carry a map.",
    "Our neighbours adopted a young dog that barks at every bird that lands in the garden.",
    "The museum guide explained how the ancient city collected rain water in stone tanks.",
    "Nobody expected the small company to win the contract against its much larger rivals.",
    "The orchestra rehearsed the difficult passage again and again until every note was right.",
    "I would like to book a table for four people on Saturday evening, near the window if possible.",
    "The children collected shells on the beach and built a castle with a moat around it.",
    "Because the printer was broken, the teacher wrote the questions on the board by hand.",
    "The farmers market opens at seven and most of the fresh bread is gone before nine.",
    "A strong wind blew the umbrella out of her hands and carried it across the square.",
    "The doctor said that a short walk after dinner is better than a long nap on the sofa.",
    "The firm moved its offices to a quieter street on the other side of the river.",
    "Every summer the village holds a festival with music, dancing and a long table in the square.",
    "The astronauts spent six months on the station and ran more than two hundred experiments.",
    "Please switch off your phones and make sure that your seat belts are fastened.",
    "The detective noticed that the clock on the wall had stopped at exactly a quarter past three.",
    "Our garden was full of butterflies after we planted lavender along the fence.",
    "The company announced that it will hire fifty new workers for its factory in the south.",
    "She wrote her first novel on a typewriter in a small room above the bakery.",
    "The bus to the airport leaves every half hour from the stop in front of the station.",
    "Scientists believe the ice on the lake will melt earlier this year than ever before.",
    "The guide asked us to stay together and not to touch anything in the old chapel.",
    "He fixed the leaking tap in ten minutes with nothing but an old wrench and some tape.",
]
SENTENCES = PARAGRAPHS + MORE

#: (espeak-ng voice, words per minute, pitch 0-99)
VOICES = [("en-us", 165, 50), ("en-gb", 150, 40), ("en-gb-scotland", 140, 55), ("en-us+f3", 175, 60),
          ("en-gb-x-rp", 155, 45), ("en-029", 145, 50), ("en-us+m3", 185, 35), ("en-gb+f2", 135, 65)]


def _tts(text: str, voice: Tuple[str, int, int], out: Path) -> np.ndarray:
    name, wpm, pitch = voice
    raw = out.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", name, "-s", str(wpm), "-p", str(pitch), "-w", str(raw), text],
                   check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", str(SR), "-c", "1", "-b", "16", str(out)], check=True,
                   capture_output=True)
    raw.unlink()
    x = _read(out)
    out.unlink()
    return _trim(x)


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == SR and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def _trim(x: np.ndarray, thresh: float = 0.01) -> np.ndarray:
    """The sentence without the synthesiser's leading and trailing silence (10 ms frames)."""
    frames = x[: x.size // 160 * 160].reshape(-1, 160)
    loud = np.nonzero(np.abs(frames).max(axis=1) > thresh)[0]
    if loud.size == 0:
        return x
    return x[loud[0] * 160:(loud[-1] + 1) * 160]


def _write(path: Path, x: np.ndarray) -> None:
    write_pcm16(path, (np.clip(x, -1, 1 - 1 / 32768) * 32768).astype("<i2"))


def _check_tools() -> None:
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is needed to build the benchmark audio (apt-get install espeak-ng sox)")


def build_long(cache: Path, name: str, seed: int, min_seconds: float = 245.0) -> Tuple[Path, List[Dict]]:
    """A long-form file and its sentences [{text, start, end}] (seconds in the file)."""
    cache.mkdir(parents=True, exist_ok=True)
    wav, meta = cache / f"{name}.wav", cache / f"{name}.json"
    if wav.exists() and meta.exists():
        return wav, json.loads(meta.read_text())
    _check_tools()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(SENTENCES))
    jfk = _read(JFK_WAV)
    pieces: List[np.ndarray] = []
    sentences: List[Dict] = []
    pos = int(rng.uniform(0.3, 1.5) * SR)
    pieces.append(np.zeros(pos, dtype=np.float32))
    k = 0
    while pos < min_seconds * SR:
        if k == 9:
            x, text = _trim(jfk, 0.02), JFK_TEXT
        else:
            text = SENTENCES[order[k % len(order)]]
            x = _tts(text, VOICES[int(rng.integers(len(VOICES)))], cache / f"{name}_part.wav")
        x = x * rng.uniform(0.4, 0.9) / max(1e-3, np.abs(x).max())
        sentences.append({"text": text, "start": round(pos / SR, 3), "end": round((pos + x.size) / SR, 3)})
        pieces.append(x.astype(np.float32))
        pos += x.size
        pause = np.zeros(int(rng.choice([rng.uniform(0.2, 0.6), rng.uniform(0.6, 1.2), rng.uniform(1.2, 2.5)])
                             * SR), dtype=np.float32)
        pieces.append(pause)
        pos += pause.size
        k += 1
    data = np.concatenate(pieces)
    # background noise in places (a fan, a street): 1/3 of the file at about -40 dBFS
    noise = rng.normal(0, 0.01, data.size).astype(np.float32)
    mask = np.repeat(rng.random(data.size // SR + 1) < 0.33, SR)[: data.size]
    data = data + noise * mask
    _write(wav, data)
    meta.write_text(json.dumps(sentences, indent=1))
    return wav, sentences


def build_utterances(cache: Path, n: int = 24, seed: int = 11) -> List[Tuple[Path, str]]:
    """``n`` single-sentence clips, each with a little silence around it."""
    cache.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(SENTENCES))
    out = []
    for i in range(n):
        wav = cache / f"utt_{i:02d}.wav"
        text = SENTENCES[order[i]]
        if not wav.exists():
            _check_tools()
            x = _tts(text, VOICES[i % len(VOICES)], cache / f"utt_{i:02d}_part.wav")
            x = x * rng.uniform(0.4, 0.9) / max(1e-3, np.abs(x).max())
            pad = np.zeros(int(0.3 * SR), dtype=np.float32)
            _write(wav, np.concatenate([pad, x, pad]))
        out.append((wav, text))
    return out


_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
         "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _say(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + _say(n % 100))
    return str(n)


def normalize(text: str) -> str:
    """Case, punctuation, British/American spelling and digits aside: what WER compares."""
    import re

    from speech import normalize as base

    text = re.sub(r"\b\d{1,3}\b", lambda m: _say(int(m.group())), text)
    words = base(text.replace("-", " ")).split()
    uk = {"neighbours": "neighbors", "practised": "practiced", "favourite": "favorite", "harbour": "harbor",
          "coloured": "colored", "centre": "center", "theatre": "theater", "neighbour": "neighbor"}
    return " ".join(uk.get(w, w) for w in words)


#: pocketsphinx 5.0.3's source package (PyPI): its test data holds recordings of people with
#: their transcripts (LibriVox: public domain; the package: BSD).
REAL_SDIST = ("https://files.pythonhosted.org/packages/db/d8/8147df2687a14eb87bfc0e8c2eb921bc4c29d2c6568e1bb08fd"
              "d2e2d1471/pocketsphinx-5.0.3.tar.gz",
              "27f4de0ca2d2bce391ce87eaab84fe6f0bc059b306fd1702d5fe6549b66e1586")


def real_speech(cache: Path) -> List[Tuple[Path, str]]:
    """Ten recordings of people (16 kHz WAV, 1-7 s) and their transcripts, from pocketsphinx's
    source package (downloaded once, hash-checked); jfk.wav is not among them."""
    import hashlib
    import re
    import tarfile
    import urllib.request

    out_dir = cache / "real"
    index = out_dir / "index.json"
    if index.exists():
        return [(out_dir / name, text) for name, text in json.loads(index.read_text())]
    out_dir.mkdir(parents=True, exist_ok=True)
    url, sha = REAL_SDIST
    sdist = out_dir / "pocketsphinx-5.0.3.tar.gz"
    if not sdist.exists():
        tmp = sdist.with_suffix(".part")
        with urllib.request.urlopen(url, timeout=120) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f)
        tmp.rename(sdist)
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != sha:
        sdist.unlink()
        raise RuntimeError(f"{url}: sha256 {digest}, expected {sha}")
    items: List[Tuple[str, str]] = []
    data = "pocketsphinx-5.0.3/test/data/"
    with tarfile.open(sdist) as tar:
        def read(name: str) -> bytes:
            return tar.extractfile(data + name).read()

        for n in ("0870", "0880", "0890", "0920", "0930"):
            stem = f"librivox/sense_and_sensibility_01_austen_64kb-{n}"
            (out_dir / f"librivox_{n}.wav").write_bytes(read(stem + ".wav"))
            items.append((f"librivox_{n}.wav", read(stem + ".txt").decode().strip()))
        cards = re.findall(r"<s>(.*?)</s> \((\d+)\)", read("cards/cards.transcription").decode())
        for text, k in cards:
            (out_dir / f"cards_{k}.wav").write_bytes(read(f"cards/{k}.wav"))
            items.append((f"cards_{k}.wav", text.strip()))
    index.write_text(json.dumps(items, indent=1))
    sdist.unlink()
    return [(out_dir / name, text) for name, text in items]
