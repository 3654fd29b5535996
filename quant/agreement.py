"""Moved to heta_lite.agreement; this re-export remains for gui/quant_view.py."""
from heta_lite.agreement import TOP_KS, Agreement, agreement, kendall, spearman, top_k_overlap  # noqa: F401
