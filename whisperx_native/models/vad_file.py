"""The Silero VAD model file (whisper.cpp's ggml VAD format), validated completely.

``whisper_vad_init_with_params`` (src/whisper.cpp 1.8.5) reads, little-endian::

    uint32      magic 0x67676d6c ("ggml")
    int32       length, bytes[length]   model type ("silero-16k")
    int32 x 3   version major, minor, patch
    int32       n_window (samples per frame, 512), int32 n_context (64)
    int32       n_encoder_layers, then per layer: in channels, out channels, kernel size
    int32 x 4   lstm_input_size, lstm_hidden_size, final_conv_in, final_conv_out
    tensors until end of file, each as in a whisper file (n_dims, name length, type,
                ne[n_dims], name, raw data)

and trusts all of it: a changed layer count reads past its arrays, a changed LSTM
or channel size builds a graph ggml asserts on (``GGML_ASSERT(obj_new)``, ``OW > 0``)
or allocates absurdly (``std::length_error``), a wrong tensor type is read as
another. The graph code hard-codes Silero's architecture (4 encoder layers of
128/64/64/128 channels, a 128-wide LSTM, 512-sample frames), so :func:`validate_vad`
accepts exactly that architecture, with every tensor's name, shape, type and data
extent checked, and nothing after the last tensor.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Tuple

from ..errors import ModelError
from .ggml_file import GGML_FILE_MAGIC, GGML_TYPES, _FileReader, _open

__all__ = ["VadFileInfo", "validate_vad", "SILERO_TENSORS"]

F32, F16 = GGML_TYPES[0], GGML_TYPES[1]

#: The hyperparameters whisper.cpp's Silero graph is written for.
N_WINDOW = 512
N_CONTEXT = 64
ENCODER_LAYERS = ((129, 128, 3), (128, 64, 3), (64, 64, 3), (64, 128, 3))  # in, out, kernel
LSTM_INPUT, LSTM_HIDDEN, FINAL_CONV_IN, FINAL_CONV_OUT = 128, 128, 128, 1


def _tensors() -> Dict[str, Tuple[Tuple[int, ...], object]]:
    """name -> (ggml dims padded to 3, type), as whisper_vad_init_with_params creates them."""
    t: Dict[str, Tuple[Tuple[int, ...], object]] = {}
    for i, (cin, cout, k) in enumerate(ENCODER_LAYERS):
        t[f"_model.encoder.{i}.reparam_conv.weight"] = ((k, cin, cout), F16)
        t[f"_model.encoder.{i}.reparam_conv.bias"] = ((cout, 1, 1), F32)
    h4 = 4 * LSTM_HIDDEN
    t["_model.decoder.rnn.weight_ih"] = ((LSTM_HIDDEN, h4, 1), F32)
    t["_model.decoder.rnn.weight_hh"] = ((LSTM_HIDDEN, h4, 1), F32)
    t["_model.decoder.rnn.bias_ih"] = ((h4, 1, 1), F32)
    t["_model.decoder.rnn.bias_hh"] = ((h4, 1, 1), F32)
    t["_model.decoder.decoder.2.weight"] = ((FINAL_CONV_IN, 1, 1), F16)
    t["_model.decoder.decoder.2.bias"] = ((1, 1, 1), F32)
    t["_model.stft.forward_basis_buffer"] = ((256, 1, 258), F16)
    return t


SILERO_TENSORS = _tensors()
_MAX_NAME = max(len(n) for n in SILERO_TENSORS)


@dataclass(frozen=True)
class VadFileInfo:
    path: Path
    file_size: int
    model_type: str        # "silero-16k"
    version: str           # "6.2.0"
    n_window: int          # samples per probability (512 at 16 kHz: 32 ms)
    n_context: int


def validate_vad(path: "str | os.PathLike[str]") -> VadFileInfo:
    """Check a Silero ggml VAD file completely (tensor data is skipped, not read).

    Raises :class:`ModelError` naming the file and the first problem."""
    p, f, size = _open(path)
    with f:
        try:
            return _validate(p, _FileReader(f, size))
        except ModelError as e:
            raise ModelError(f"invalid Silero VAD model file '{p}': {e}") from None
        except OSError as e:
            raise ModelError(f"cannot read VAD model file '{p}': {e}") from None


def _validate(p: Path, r: _FileReader) -> VadFileInfo:
    (magic,) = struct.unpack("<I", r.exact(0, 4, "the magic number"))
    if magic != GGML_FILE_MAGIC:
        raise ModelError(f"bad magic 0x{magic:08x}: not a ggml VAD model")
    (n,) = struct.unpack("<i", r.exact(4, 4, "the model type length"))
    if not 1 <= n <= 64:
        # a whisper model file has n_vocab (51864 ...) here
        raise ModelError(f"model type length {n} is not 1..64 (a whisper model, not a VAD model?)")
    raw_type = r.exact(8, n, "the model type")
    model_type = raw_type.decode("ascii", "replace")
    if model_type != "silero-16k":
        raise ModelError(f"model type {raw_type!r} is not 'silero-16k' (the only VAD whisper.cpp runs)")
    off = 8 + n
    major, minor, patch, n_window, n_context, n_layers = struct.unpack(
        "<6i", r.exact(off, 24, "the version and window"))
    off += 24
    if not all(0 <= v <= 1000 for v in (major, minor, patch)):
        raise ModelError(f"version {major}.{minor}.{patch} is not a Silero version")
    if n_window != N_WINDOW or n_context != N_CONTEXT:
        raise ModelError(f"window {n_window} / context {n_context}, expected Silero's {N_WINDOW} / {N_CONTEXT}")
    if n_layers != len(ENCODER_LAYERS):
        raise ModelError(f"{n_layers} encoder layers, whisper.cpp's Silero graph has {len(ENCODER_LAYERS)}")
    layers = struct.unpack(f"<{3 * n_layers}i", r.exact(off, 12 * n_layers, "the encoder layers"))
    off += 12 * n_layers
    for i, want in enumerate(ENCODER_LAYERS):
        got = tuple(layers[3 * i:3 * i + 3])
        if got != want:
            raise ModelError(f"encoder layer {i} is (in, out, kernel) {got}, expected {want}")
    lstm = struct.unpack("<4i", r.exact(off, 16, "the LSTM sizes"))
    off += 16
    want_lstm = (LSTM_INPUT, LSTM_HIDDEN, FINAL_CONV_IN, FINAL_CONV_OUT)
    if lstm != want_lstm:
        raise ModelError(f"LSTM input/hidden and final conv sizes {lstm}, expected {want_lstm}")

    found = set()
    while off < r.size:
        if len(found) == len(SILERO_TENSORS):
            raise ModelError(f"{r.size - off} unexpected bytes after the last tensor (offset {off})")
        where = f"tensor #{len(found)} at offset {off}"
        n_dims, name_len, ttype = struct.unpack("<3i", r.exact(off, 12, f"the header of {where}"))
        if not 0 <= n_dims <= 3:
            raise ModelError(f"{where}: n_dims {n_dims} is not 0..3")
        if not 1 <= name_len <= _MAX_NAME:
            raise ModelError(f"{where}: name length {name_len} is not 1..{_MAX_NAME}")
        rest = r.exact(off + 12, 4 * n_dims + name_len, f"the dims and name of {where}")
        ne = struct.unpack_from(f"<{n_dims}i", rest)
        raw_name = rest[4 * n_dims:]
        name = raw_name.decode("ascii", "replace")
        spec = SILERO_TENSORS.get(name)
        if spec is None:
            raise ModelError(f"{where}: unknown tensor name {raw_name!r}")
        if name in found:
            raise ModelError(f"{where}: tensor '{name}' appears twice")
        want_ne, want_type = spec
        got_ne = tuple(ne) + (1,) * (3 - len(ne))
        if got_ne != want_ne:
            raise ModelError(f"tensor '{name}' has dims {list(ne)}, expected {list(want_ne)}")
        if ttype != want_type.id:
            got = GGML_TYPES.get(ttype)
            raise ModelError(f"tensor '{name}' has type {got.name if got else ttype}, expected {want_type.name}")
        nbytes = want_type.nbytes(want_ne)
        data = off + 12 + len(rest)
        if data + nbytes > r.size:
            raise ModelError(f"truncated: tensor '{name}' needs {nbytes} bytes at offset {data} "
                             f"but the file is {r.size} bytes")
        found.add(name)
        off = data + nbytes
    if len(found) < len(SILERO_TENSORS):
        missing = [t for t in SILERO_TENSORS if t not in found]
        raise ModelError(f"truncated or incomplete: {len(missing)} of {len(SILERO_TENSORS)} tensors missing, "
                         f"e.g. '{missing[0]}'")
    return VadFileInfo(p, r.size, model_type, f"{major}.{minor}.{patch}", n_window, n_context)
