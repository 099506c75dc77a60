"""WER of model files against each other on the speech sets, per set and pooled (issue 14's ± 0.3).

    python bench/variant_wer.py OUT.json tiny.en tiny.en-q8_0:q8_0 tiny.en-q5q8:q8_0 ...

Each argument is a registry name or a ggml path, optionally ``:KV`` for the attention caches
(``Model(kv_type=KV)``). The speech sets: ``NLONG`` (default 12) long files of bench/corpus.py
(seeds 1.., 4 minutes each), its 24 clips, and the recordings of people with jfk.wav. One Model per
file type, default decoding (beam 5), 2 threads. Every transcript goes to OUT.json as it is made
(a rerun skips what is there), and the WER per set and over all words is printed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

import corpus  # noqa: E402
from default_race import CACHE  # noqa: E402
from speech import JFK_TEXT  # noqa: E402

JFK = REPO / "vendor" / "whisper.cpp" / "samples" / "jfk.wav"


def speech_sets(n_long: int):
    sets = {"long": [], "clips": corpus.build_utterances(CACHE),
            "people": corpus.real_speech(CACHE) + [(JFK, JFK_TEXT)]}
    for i in range(n_long):
        wav, sentences = corpus.build_long(CACHE, f"long_{chr(ord('a') + i)}", i + 1)
        sets["long"].append((wav, " ".join(x["text"] for x in sentences)))
    return sets


def wer_table(out: dict, variant: str) -> dict:
    import jiwer

    rows = [v for k, v in out.items() if k.startswith(variant + "|")]
    table = {}
    for key in ("long", "clips", "people", "all"):
        rr = [r for r in rows if key == "all" or r["set"] == key]
        if rr:
            table[key] = round(100 * jiwer.wer([r["ref"] for r in rr], [r["hyp"] for r in rr]), 2)
    return table


def main(argv) -> int:
    import whisperx_native as wn

    path, variants = Path(argv[0]), argv[1:]
    out = json.loads(path.read_text()) if path.exists() else {}
    sets = speech_sets(int(os.environ.get("NLONG", "12")))
    for variant in variants:
        name, _, kv = variant.partition(":")
        with wn.Model(name, n_threads=2, adapt_threads=False, best_variant=False, kv_type=kv or "auto") as m:
            for key, items in sets.items():
                for wav, ref in items:
                    k = f"{variant}|{wav}"
                    if k not in out:
                        out[k] = {"set": key, "ref": corpus.normalize(ref),
                                  "hyp": corpus.normalize(m.transcribe(str(wav)).text)}
                        path.write_text(json.dumps(out))
        print(variant, wer_table(out, variant), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
