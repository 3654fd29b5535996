"""Moved to heta_lite.methods.heta.cost (HETA's cost model); this re-export remains for gui/page.py."""
from .methods.heta.cost import (Calibration, Plan, calibrate, estimate_memory, estimate_seconds,  # noqa: F401
                                fit_memory, plan_for_budget)
