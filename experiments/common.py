"""Shared helpers for benchmarks: prompts of a given token length, percentiles, and writing
results as JSON plus a short Markdown table. Rank agreement (Spearman, top-k overlap) is the
core's: heta_lite.agreement."""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"

FILLER = ("The history of the city goes back to a small fishing village on the river. Over the centuries it grew "
          "into a trading port, then an industrial centre, and today it is known for its universities, its parks "
          "and a football club that has won the national league eleven times. ")


def ids_of_length(tokenizer, n: int, text: str = FILLER) -> list[int]:
    """n+1 token ids of ordinary English text: context of n tokens and a target at position n."""
    ids = tokenizer(text * (n // 20 + 2), add_special_tokens=False)["input_ids"]
    return ids[: n + 1]


def machine() -> dict[str, Any]:
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def write_results(name: str, data: dict[str, Any], table_header: list[str], rows: list[list[Any]],
                  command: str, notes: str = "") -> tuple[Path, Path]:
    """Write results/<name>.json and results/<name>.md (a table, the command, machine and notes)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name, "command": command, "machine": machine(), "date": time.strftime("%Y-%m-%d"), **data}
    jpath = RESULTS / f"{name}.json"
    jpath.write_text(json.dumps(data, indent=2, default=float) + "\n")
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = [f"# {name}", "", f"`{command}`", "", f"Machine: {data['machine']['platform']}, torch "
             f"{data['machine']['torch']}, {data['machine']['threads']} threads"
             + (f", GPU {data['machine'].get('gpu')}" if data["machine"]["cuda"] else ", no GPU") + f"; {data['date']}.",
             "", "| " + " | ".join(table_header) + " |", "|" + "---|" * len(table_header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    if notes:
        lines += ["", notes]
    mpath = RESULTS / f"{name}.md"
    mpath.write_text("\n".join(lines) + "\n")
    return jpath, mpath


def forward_backward_seconds(lm, context_ids: list[int], target_id: int) -> float:
    """One forward+backward of log p(target) to the input embeddings: the unit every benchmark
    divides its times by, measured in the same run (this machine's speed varies with its load)."""
    from heta_lite.methods.logprob import target_logprob

    X = lm.model.get_input_embeddings()(torch.tensor(context_ids, device=lm.device)).detach().requires_grad_(True)
    t0 = time.perf_counter()
    target_logprob(lm.model, X[None], target_id).sum().backward()
    if lm.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def release_freed_memory() -> None:
    """Hand freed heap back to the OS (glibc `malloc_trim`), so that the next block's RSS peak
    counts only what it allocates: without this, memory an earlier run freed but the allocator
    kept is already resident and hides part of the next run's peak (seen: a balanced run after a
    fast one showed 433 MiB added at n = 64, where its graph and four probes, measured alone, add
    about 670)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim, the peak may read low
        pass

