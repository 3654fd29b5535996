"""Profiling tools that sit above the core: run one explanation under torch.profiler and say where
its time goes (`python -m profiling.profile_explain`). The engine's own always-on measurements
(stage timer, peak memory) live in heta_lite/profiling.py, since every report records them."""
