"""Faithfulness metrics (deletion, AOPC, sufficiency, Soft-NC/NS, DSA) and the evaluation runner."""
