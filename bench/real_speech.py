"""Recordings of people: WER and the same words for every copy, against faster-whisper.

    python bench/real_speech.py                  # about 2 minutes, tiny.en
    python bench/real_speech.py --model base

The race (bench/default_race.py) measures on speech synthesised with espeak-ng. This bench
runs the same comparison on recordings of people: bench/corpus.py's ``real_speech`` (five
LibriVox sentences and five spoken card names from pocketsphinx's source package on PyPI,
1-7 s each) and jfk.wav. Runners, in one process, on the same weights (faster-whisper runs
the CTranslate2 files the model store converts):

- whisperx_native default (beam 5, fallback) and ``preset="fast"`` (greedy);
- faster-whisper 1.2.1 defaults and greedy (beam 1, temperature 0, no conditioning).

Reported: WER per runner over the eleven clips (bench/corpus.py's normaliser), and the share
of clips whose normalised words are the same for every copy (16 kHz WAV, 44.1 kHz stereo,
float WAV, FLAC, 64 kbit/s MP3, 2 s of silence either side: bench/default_race.py's
``variants``) for each runner. Writes bench/results/real_speech.md and .json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import jiwer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402
from default_race import fw_transcript, variants  # noqa: E402
from speech import JFK_TEXT, JFK_WAV  # noqa: E402


def ct2_model_dir(files, joined: Path) -> Path:
    """The CTranslate2 directory faster-whisper opens: the package's own, or, for a model.bin
    split over packages (base), the parts joined once into ``joined`` with the first's other files."""
    import shutil

    if len(files) == 1:
        return Path(files[0]).parent
    if not (joined / "model.bin").exists():
        joined.mkdir(parents=True, exist_ok=True)
        for f in Path(files[0]).parent.iterdir():
            if not f.name.startswith("model.bin"):
                shutil.copy(f, joined / f.name)
        with open(joined / "model.bin.part", "wb") as out:
            for part in files:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out)
        (joined / "model.bin.part").rename(joined / "model.bin")
    return joined


def runners(model: str):
    import whisperx_native as wn
    from faster_whisper import WhisperModel
    from whisperx_native.models.store import packaged_ct2_files

    ours = wn.Model(model, n_threads=2, adapt_threads=False)
    fw = WhisperModel(str(ct2_model_dir(packaged_ct2_files(model), corpus.CACHE / f"ct2-{model}")), cpu_threads=2)
    lang = {} if model.endswith(".en") else {"language": "en"}
    return {
        "ours default": lambda p: ours.transcribe(str(p), **lang).text,
        "ours fast": lambda p: ours.transcribe(str(p), preset="fast", **lang).text,
        "faster-whisper default": lambda p: fw_transcript(fw, p, **lang),
        "faster-whisper greedy": lambda p: fw_transcript(fw, p, beam_size=1, temperature=0.0,
                                                         condition_on_previous_text=False, **lang),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--out", default=str(HERE / "results" / "real_speech"))
    args = ap.parse_args(argv)

    clips = corpus.real_speech(corpus.CACHE) + [(JFK_WAV, JFK_TEXT)]
    run = runners(args.model)
    refs = [corpus.normalize(t) for _, t in clips]
    res = {"model": args.model, "clips": len(clips), "words": sum(len(r.split()) for r in refs), "runners": {}}
    with tempfile.TemporaryDirectory() as tmp:
        copies = [variants(Path(w), Path(tmp)) for w, _ in clips]
        for key, transcribe in run.items():
            t0 = time.perf_counter()
            texts = [{kind: corpus.normalize(transcribe(p)) for kind, p in vs.items()} for vs in copies]
            hyps = [t["16k wav"] for t in texts]
            unstable = {Path(w).stem: t for (w, _), t in zip(clips, texts) if len(set(t.values())) > 1}
            res["runners"][key] = {
                "wer": 100 * jiwer.wer(refs, hyps),
                "stable": 100 * (len(clips) - len(unstable)) / len(clips),
                "unstable": unstable,
                "wrong": {Path(w).stem: (r, h) for (w, _), r, h in zip(clips, refs, hyps) if r != h},
                "seconds": time.perf_counter() - t0,
            }
            print(key, {k: round(v, 2) for k, v in res["runners"][key].items() if isinstance(v, float)}, flush=True)

    lines = [f"# Recordings of people ({time.strftime('%Y-%m-%d')}, {platform.machine()}, {args.model}, "
             f"{res['clips']} clips, {res['words']} words)", "",
             "| runner | WER % | same words for every copy |", "|---|---:|---:|"]
    lines += [f"| {k} | {v['wer']:.2f} | {v['stable']:.0f} % |" for k, v in res["runners"].items()]
    for key, v in res["runners"].items():
        if v["unstable"]:
            lines += ["", f"{key}, clips whose copies differ:"]
            for clip, texts in v["unstable"].items():
                lines.append(f"- {clip}: " + "; ".join(f"{kind}: {t!r}" for kind, t in texts.items()))
    report = "\n".join(lines) + "\n"
    print(report)
    Path(args.out + ".md").write_text(report)
    Path(args.out + ".json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
