"""Transcript normalisation for comparisons and WER: case and punctuation aside."""

from __future__ import annotations

import re

_PUNCT = re.compile(r"[^\w\s']")


def normalize(text: str) -> str:
    """Lower case, punctuation replaced by spaces, single spaces."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())
