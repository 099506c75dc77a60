"""``whisperx-native models ...``: list, install, convert, quantize, verify, remove.

whisperx_native.cli registers these with :func:`add_parser` and dispatches to
:func:`run`. Every subcommand takes ``--json`` (one JSON document on stdout, for
scripts) and ``--cache DIR``. Exit codes: 0 ok, 1 a check failed, 2 a model error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List

from ..convert.ct2 import CT2Model
from ..convert.ct2_to_ggml import ct2_hparams
from ..errors import ModelError

__all__ = ["add_parser", "run"]

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``models`` command (with its own subcommands) to ``subparsers``."""
    p = subparsers.add_parser("models", help="list, install, convert, quantize, verify, remove models")
    sub = p.add_subparsers(dest="models_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--cache", default=None, help="model cache directory (default: $WHISPERX_NATIVE_CACHE "
                                                      "or the user cache)")

    ls = sub.add_parser("list", parents=[common], help="installed models with size and memory needs")
    ls.add_argument("--available", action="store_true", help="every name the store can install")
    ls.add_argument("--measure", action="store_true", help="load each model to measure what it allocates")

    inst = sub.add_parser("install", parents=[common], help="install a model by name")
    inst.add_argument("name")
    inst.add_argument("--base-url", default=None, help="download from here ($WHISPERX_NATIVE_MODEL_URL)")
    inst.add_argument("--ct2-dir", default=None, help="convert from this CTranslate2 model directory")
    inst.add_argument("--offline", action="store_true", help="never download")
    inst.add_argument("--force", action="store_true", help="reinstall even if a valid file is installed")

    conv = sub.add_parser("convert", parents=[common], help="convert a CTranslate2 model into the cache")
    conv.add_argument("ct2_dir")
    conv.add_argument("--name", default=None, help="model name (default: recognised from its dimensions)")

    q = sub.add_parser("quantize", parents=[common], help="quantize an installed (or installable) model")
    q.add_argument("name", help="F16 model name, e.g. tiny.en")
    q.add_argument("type", help="q8_0, q5_0, q5_1, q4_0, q4_1 (q2_k..q6_k for base and larger), bf16, or the "
                                "mixed bf16q8 / q5q8 (encoder type, q8_0 decoder) and q5e8 (q5_0, q8_0 "
                                "token embedding)")
    q.add_argument("--offline", action="store_true", help="never download the F16 model")

    v = sub.add_parser("verify", parents=[common], help="validate installed files and their checksums")
    v.add_argument("name", nargs="?", default=None)

    rm = sub.add_parser("remove", parents=[common], help="delete an installed model")
    rm.add_argument("name")
    return p


def run(args: argparse.Namespace) -> int:
    """Run the ``models`` subcommand ``args.models_command``; returns the exit code."""
    try:
        return _COMMANDS[args.models_command](args)
    except ModelError as exc:
        _emit(args, {"error": str(exc)}, lambda d: f"error: {d['error']}", err=True)
        return EXIT_ERROR


def _emit(args, data, text, err: bool = False) -> None:
    if args.json:
        print(json.dumps(data, indent=1, default=str))
    else:
        print(text(data), file=sys.stderr if err else sys.stdout)


def _mb(n) -> str:
    return f"{n / 1e6:8.1f} MB" if n is not None else "       ?"


def _list(args) -> int:
    from . import registry, store

    if args.available:
        installed = {r["name"] for r in store.installed_models(args.cache) if r.get("valid")}
        rows = [dict(registry.get(n).as_dict(), installed=n in installed) for n in registry.names()]
        _emit(args, rows, _available_text)
        return EXIT_OK
    rows = store.installed_models(args.cache, measure=args.measure)

    def text(rs: List[Dict]) -> str:
        if not rs:
            return f"no models installed in {store.cache_dir(args.cache)}"
        tw = max([5] + [len(r["type"]) for r in rs if r["valid"]])
        lines = [f"{'name':22} {'type':{tw}} {'size':>11} {'weights':>11} {'per state':>11} {'total':>11}  source"]
        for r in rs:
            if not r["valid"]:
                lines.append(f"{r['name']:22} INVALID: {r['error']}")
                continue
            m = r.get("measured") or r["memory"]  # measured when asked, else the exact estimate
            lines.append(f"{r['name']:22} {r['type']:{tw}} {_mb(r['size'])} {_mb(m['weights'])} {_mb(m['state'])} "
                         f"{_mb(m['total'])}  {r['source'] or '?'}")
        return "\n".join(lines)

    _emit(args, rows, text)
    return EXIT_OK


def _available_text(rows: List[Dict]) -> str:
    tw = max([len("type")] + [len(r["type"]) for r in rows])  # bf16+q8_0 is wider than f16
    lines = [f"{'name':22} {'type':{tw}} {'size':>11} {'needs':>11}  {'installed':9}  downloadable"]
    for r in rows:
        lines.append(f"{r['name']:22} {r['type']:{tw}} {_mb(r['size'])} {_mb(r['memory']['total'])}  "
                     f"{'yes' if r['installed'] else '-':9}  {'yes' if r['published'] else '-'}")
    return "\n".join(lines) + "\nsize: approximate file size; needs: weights + one state's buffers (greedy)"


def _install(args) -> int:
    from . import store

    res = store.install(args.name, cache=args.cache, base_url=args.base_url, ct2_dir=args.ct2_dir,
                        offline=True if args.offline else None, force=args.force)
    _emit(args, res.as_dict(), _attempts_text)
    return EXIT_OK


def _attempts_text(d: Dict) -> str:
    return "\n".join([f"{'+' if a['ok'] else '-'} {a['source']}: {a['detail']}" for a in d["attempts"]] + [d["path"]])


def _convert(args) -> int:
    from . import registry, store

    name = args.name
    if name is None:
        model_bin = Path(args.ct2_dir) / "model.bin"
        if not model_bin.is_file():
            raise ModelError(f"'{args.ct2_dir}' has no model.bin: not a CTranslate2 model directory")
        with CT2Model(model_bin) as m:
            hp = ct2_hparams(m)
        name = next((a for a, h in registry.ARCHS.items() if h == hp), None)
        if name is None:
            raise ModelError(f"'{args.ct2_dir}' has dimensions of no known model; give --name")
    res = store.install(name, cache=args.cache, ct2_dir=args.ct2_dir, offline=True, force=True)
    _emit(args, res.as_dict(), lambda d: d["path"])
    return EXIT_OK


def _quantize(args) -> int:
    from . import store

    res = store.install(f"{args.name}-{args.type.lower()}", cache=args.cache, offline=True if args.offline else None)
    _emit(args, res.as_dict(), _attempts_text)
    return EXIT_OK


def _verify(args) -> int:
    from . import store

    rows = store.verify(args.name, args.cache)
    _emit(args, rows, lambda rs: "\n".join(
        f"{r['name']:22} {'ok' if r['ok'] else 'FAILED: ' + '; '.join(r['problems'])}" for r in rs)
        or "no models installed")
    return EXIT_OK if all(r["ok"] for r in rows) else EXIT_FAILED


def _remove(args) -> int:
    from . import store

    removed = store.remove(args.name, args.cache)
    _emit(args, {"removed": [str(p) for p in removed]},
          lambda d: "\n".join(f"removed {p}" for p in d["removed"]) or f"{args.name} is not installed")
    return EXIT_OK if removed else EXIT_FAILED


_COMMANDS = {"list": _list, "install": _install, "convert": _convert, "quantize": _quantize,
             "verify": _verify, "remove": _remove}
