"""Transitional: the code lives in heta_lite.profiling; profiling.memory re-exports it for gui/."""
