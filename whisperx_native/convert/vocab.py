"""Whisper's GPT-2 byte-level BPE vocabulary, back to raw bytes.

Tokenizer files (CTranslate2's vocabulary.txt/json, Hugging Face vocab.json)
spell each token with GPT-2's printable stand-ins for bytes ("Ġthe" is
b" the"); a ggml file stores the raw bytes. Only the ordinary tokens go into
the file, exactly as convert-pt-to-ggml.py writes them: ids 0..50256, where
50256 is "<|endoftext|>" in the English-only vocabulary and an empty token in
the multilingual one. whisper_model_load synthesizes every special token after
that ("[_SOT_]", language and timestamp tokens) from n_vocab.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from ..errors import ModelError

__all__ = [
    "GGML_VOCAB_TOKENS",
    "byte_decoder",
    "byte_encoder",
    "bytes_to_token",
    "ggml_vocab",
    "load_ct2_vocabulary",
    "token_to_bytes",
]

# Tokens convert-pt-to-ggml.py writes: the GPT-2 base vocabulary plus id 50256.
GGML_VOCAB_TOKENS = 50257
_EOT = "<|endoftext|>"


@cache
def byte_encoder() -> dict[int, str]:
    """GPT-2's bytes_to_unicode(): printable bytes map to themselves, the other
    68 (controls, space, soft hyphen...) to U+0100 onwards, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@cache
def byte_decoder() -> dict[str, int]:
    return {c: b for b, c in byte_encoder().items()}


def token_to_bytes(token: str) -> bytes:
    """Decode one byte-level BPE token ("Ġthe") to raw bytes (b" the")."""
    decoder = byte_decoder()
    try:
        return bytes(decoder[c] for c in token)
    except KeyError as e:
        raise ModelError(f"token {token!r} has character {e.args[0]!r} outside GPT-2's byte alphabet") from None


def bytes_to_token(data: bytes) -> str:
    """Inverse of :func:`token_to_bytes`."""
    encoder = byte_encoder()
    return "".join(encoder[b] for b in data)


def load_ct2_vocabulary(model_dir: str | Path) -> list[str]:
    """A CTranslate2 model's vocabulary, one string per token id.

    CTranslate2 writes ``vocabulary.json`` (a JSON list) in recent versions and
    ``vocabulary.txt`` (one token per line) before.
    """
    model_dir = Path(model_dir)
    json_path, txt_path = model_dir / "vocabulary.json", model_dir / "vocabulary.txt"
    try:
        if json_path.is_file():
            tokens = json.loads(json_path.read_text(encoding="utf-8"))
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise ModelError(f"'{json_path}' is not a JSON list of strings")
            return tokens
        if txt_path.is_file():
            # Split on "\n" only: a line may legitimately be empty (multilingual
            # id 50256), and splitlines() would also break on other separators.
            text = txt_path.read_text(encoding="utf-8")
            lines = text.split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            return [line[:-1] if line.endswith("\r") else line for line in lines]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"cannot read the vocabulary of '{model_dir}': {e}") from None
    raise ModelError(f"'{model_dir}' has no vocabulary.json or vocabulary.txt")


def _is_special(token: str) -> bool:
    return len(token) > 4 and token.startswith("<|") and token.endswith("|>")


def ggml_vocab(tokens: Sequence[str], n_vocab: int) -> list[bytes]:
    """The vocabulary entries to store in a ggml file, as raw bytes.

    ``tokens`` is the full tokenizer vocabulary (n_vocab entries, special
    tokens included); the result is its first 50257 entries, decoded.
    """
    if len(tokens) != n_vocab:
        raise ModelError(f"vocabulary has {len(tokens)} tokens but the model has {n_vocab} embeddings")
    multilingual = n_vocab >= 51865
    last = tokens[GGML_VOCAB_TOKENS - 1]
    expected_last = "" if multilingual else _EOT
    if last != expected_last:
        raise ModelError(
            f"vocabulary token {GGML_VOCAB_TOKENS - 1} is {last!r}, expected {expected_last!r} "
            f"for a{' multilingual' if multilingual else 'n English-only'} Whisper tokenizer"
        )
    special = next((i for i, t in enumerate(tokens[: GGML_VOCAB_TOKENS - 1]) if _is_special(t)), None)
    if special is not None:
        raise ModelError(f"vocabulary token {special} is the special token {tokens[special]!r}: not Whisper's")
    return [token_to_bytes(t) for t in tokens[:GGML_VOCAB_TOKENS]]
