"""Moved to heta_lite.profiling; this re-export remains for gui/api.py and gui/page.py."""
from heta_lite.profiling import MemorySnapshot, PeakMemory, StageTimer, snapshot  # noqa: F401
