"""experiments/bench_latency.py runs end to end on a tiny model (temporary results folder): each
(n, preset) row has its time as a multiple of the same run's forward+backward, and the memory
estimate beside the measured peak it predicts. The numbers are the benchmark's business."""
import json

import experiments.common as common
from experiments import bench_latency


def test_rows_carry_ratios_and_the_memory_estimate(tiny_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    bench_latency.main(["--model", tiny_folder, "--lengths", "8,16", "--qualities", "fast,balanced", "--runs", "1",
                        "--reference-max-n", "8", "--threads", "1", "--name", "lat"])
    doc = json.loads((tmp_path / "lat.json").read_text())
    rows = doc["results"]
    assert [(r["n"], r["quality"]) for r in rows] == [(8, "fast"), (8, "balanced"), (16, "fast"), (16, "balanced")]
    for r in rows:
        assert r["ratio_to_forward_backward"] == r["p50_s"] / r["forward_backward_p50_s"]
        assert r["estimated_added_bytes"] > 0 and r["added_peak_bytes"] >= 0
        assert set(r["stages_x_forward_backward"]) >= {"gate", "curvature", "information"}
    assert rows[0]["reference_s"] is not None and rows[2]["reference_s"] is None
    assert "| estimate / added |" in (tmp_path / "lat.md").read_text()
