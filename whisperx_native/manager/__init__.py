"""WhisperManager: when native memory exists, which model serves, and how calls are measured.

The Cython layer owns native memory and reports its size; this package decides when
it is allocated (lazy load, idle unload), which model serves (budget, switching,
CPU-driven downgrade) and records what each call cost (metrics, events).
"""

from .cpu import CpuMonitor, external_load_sampler
from .events import Event
from .manager import WhisperManager
from .metrics import Metrics

__all__ = ["WhisperManager", "CpuMonitor", "external_load_sampler", "Event", "Metrics"]
