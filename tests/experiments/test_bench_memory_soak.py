"""experiments/bench_memory_soak.py runs end to end on a tiny model (temporary results folder) and
reports its time per explanation as a multiple of the same run's forward+backward."""
import json

import experiments.common as common
from experiments import bench_memory_soak


def test_the_soak_reports_memory_and_time_units(tiny_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    bench_memory_soak.main(["--model", tiny_folder, "--count", "3", "--threads", "1"])
    doc = json.loads((tmp_path / "memory_soak_cpu.json").read_text())
    assert [i for i, _ in doc["rss_samples"]] == [0, 2]
    assert doc["seconds_p50"] > 0 and doc["x_forward_backward_p50_first_20"] > 0
    assert "x its context's forward+backward" in (tmp_path / "memory_soak_cpu.md").read_text()
