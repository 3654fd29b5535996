"""Memory (NVML, torch, psutil) and latency measurement."""
