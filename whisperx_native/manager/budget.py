"""Will a model fit the memory budget, and if not, which one does?

The budget is the process's peak resident memory, as the seed's figures are. The
need of a model is the model store's estimate (``models.registry.estimate_memory``):
weights exactly, plus per concurrent call a state (KV caches and compute buffer, with
the self-attention cache grown for beam search: on Linux at the resident peak of its
largest phase, elsewhere every buffer at once), plus what the process holds beside them
(:data:`PROCESS_OVERHEAD`). Registry names are estimated without installing anything;
paths from their header.
"""

from __future__ import annotations

import sys
from typing import Iterable, List, NamedTuple, Optional

from ..errors import MemoryBudgetError, ModelError
from ..models import registry
from ..models.ggml_file import validate
from ..models.store import looks_like_path

#: The unit of the budget and of every RSS figure of this project: MiB, as ``ru_maxrss`` / 1024,
#: ps, top and psutil users read a process's size (the seed's table was measured so).
MB = 1 << 20
#: Default peak budget of the process, bytes.
DEFAULT_BUDGET = 700 * MB
#: A process's peak RSS beyond the estimate of its weights and states: the interpreter with
#: numpy and this package (~26 MB), whisper.cpp's vocabulary and host-side vectors, ggml-cpu's
#: work buffer, a long file's reader (decoder, VAD) and results. Where a state's pages go back
#: to the kernel between graphs (Linux: patches 0027, 0028, 0030) the states are counted at
#: their resident peak (MemoryEstimate.peak_state), elsewhere at every buffer at once.
#: Calibrated through WhisperManager on tiny.en with q8_0 caches, beam 5, one state
#: (2026-11-29, patches 0031-0033): the largest peak less the estimate of the files around
#: the 100 MB line, q8_0 / q5q8 / q5e8, on jfk.wav and the 4-minute long_a: 41.7-42.3 MB
#: (q8_0 on long_a 98.3-98.8 MB against 56.6 MB estimated), rounded up. An hour's results
#: add a few MB beyond it. small and medium peak well below their estimates: their self
#: caches are resident only where written, and a run writes a fraction of the worst case.
PROCESS_OVERHEAD = 43 * MB
#: Whether a state's memory is resident only for the graph that runs (see above).
PAGES_HANDED_BACK = sys.platform == "linux"
#: Default decoding is beam search of 5: budget for it.
BUDGET_BEAM_SIZE = 5
#: Tried in this order when a model is over budget (registry names only): smaller files, and
#: where two are about the size, the one that keeps more of the decoder (q5q8: q5_0 encoder,
#: q8_0 decoder; the words depend on the decoder's precision more than on the encoder's, and
#: within the decoder on the token embedding's: q5e8 keeps only that at q8_0).
QUANTIZED_STEPS = ("q8_0", "q5q8", "q5e8", "q6_k", "q5_1", "q5_k", "q5_0", "q4_k", "q4_0", "q3_k")


def _estimate(name: str, n_states: int, beam_size: int, kv_type) -> "registry.MemoryEstimate":
    """The registry's native estimate of ``name`` (registry name or ggml path, read once)."""
    from .. import pipeline

    info = validate(name) if looks_like_path(name) else None
    hp = info.hparams if info is not None else registry.get(name).hparams
    kv = pipeline.kv_type_for(kv_type, use_gpu=True, flash_attn=True, hp=hp)
    return registry.estimate_memory(hp, beam_size, n_states=n_states, kv_type=kv,
                                    weight_bytes=info.weight_bytes if info is not None else None)


def need_of(name: str, n_states: int, beam_size: int = BUDGET_BEAM_SIZE, kv_type="auto") -> int:
    """Estimated peak bytes of a process running ``name`` (registry name or ggml path) with
    ``n_states`` calls, attention caches of ``kv_type`` ("auto": what Model(name) loads,
    pipeline.kv_type_for)."""
    est = _estimate(name, n_states, beam_size, kv_type)
    return PROCESS_OVERHEAD + est.weights + n_states * _state_bytes(est)


def states_within(name: str, budget: int, beam_size: int = BUDGET_BEAM_SIZE, kv_type="auto") -> int:
    """How many states of ``name`` (each a call, or a long-form worker of one) fit ``budget``
    beside its weights and the process's overhead; at least 0."""
    est = _estimate(name, 1, beam_size, kv_type)
    return max(0, (budget - PROCESS_OVERHEAD - est.weights) // _state_bytes(est))


def _state_bytes(est: "registry.MemoryEstimate") -> int:
    """One state as the budget counts it: at its resident peak where pages go back (Linux)."""
    return est.peak_state if PAGES_HANDED_BACK else est.state


def candidates(name: str, chain: Iterable[str]) -> List[str]:
    """``name``, its quantized variants the registry knows, then the models after it in ``chain``."""
    out = [name]
    if not looks_like_path(name):
        try:
            arch, quant = registry.parse_name(name)
        except ModelError:
            arch, quant = None, None
        if arch is not None and quant is None:
            for q in QUANTIZED_STEPS:
                try:
                    out.append(registry.get(f"{arch}-{q}").name)
                except ModelError:
                    pass
    chain = list(chain)
    if name in chain:
        out += chain[chain.index(name) + 1:]
    return out


class Fit(NamedTuple):
    """A model that fits the budget: its name, estimated need (None: no budget) and the
    attention caches planned for it (``Model(kv_type=...)``)."""

    name: str
    need: Optional[int]
    kv_type: str = "auto"


def fitting(name: str, budget: "int | None", n_states: int, chain: Iterable[str],
            kv_type="auto") -> List[Fit]:
    """Models to try for ``name`` under ``budget``, best first, with their estimated need
    (attention caches of ``kv_type``). With ``kv_type="auto"``, a model whose own caches do
    not fit but whose q8_0 caches do is planned with q8_0 caches (half their memory; the
    speed cost, a few percent, beats smaller weights' loss of words). ``chain`` empty:
    only ``name`` itself. Raises MemoryBudgetError when none fits."""
    if budget is None:
        return [Fit(name, None, kv_type)]
    chain = list(chain)
    out, tried, over = [], [], 0
    for cand in candidates(name, chain) if chain else [name]:
        try:
            need = need_of(cand, n_states, kv_type=kv_type)
            kv = kv_type
            if need > budget and kv_type == "auto":
                need_q8 = need_of(cand, n_states, kv_type="q8_0")
                if need_q8 <= budget:
                    need, kv = need_q8, "q8_0"
        except ModelError as exc:
            tried.append(f"{cand}: {exc}")
            continue
        if need <= budget:
            out.append(Fit(cand, need, kv))
        else:
            over += 1
            tried.append(f"{cand}: needs ~{need / MB:.0f} MB")
    if not out and not over:  # nothing was too big: the name itself is unknown or unreadable
        raise ModelError(f"cannot use model {name!r}: " + "; ".join(tried))
    if not out:
        raise MemoryBudgetError(f"no model fits the {budget / MB:.0f} MB budget with {n_states} concurrent "
                                "call(s): " + "; ".join(tried))
    return out
