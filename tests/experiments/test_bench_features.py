"""experiments/bench_features.py runs end to end (on a tiny model, in a temporary results folder):
every feature gets a row with seconds and ratios to the forward and forward+backward of the same
run. Its numbers are the benchmark's business; here only that it runs and writes what it says."""
import json

import experiments.common as common
from experiments import bench_features


def test_every_feature_gets_a_row(tiny_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    assert bench_features.main(["--model", tiny_folder, "--repeats", "1", "--words", "120", "--name", "bf"]) == 0
    doc = json.loads((tmp_path / "bf.json").read_text())
    names = [r["feature"] for r in doc["rows"]]
    for want in ("forward", "forward+backward", "anomaly flags", "failure risk", "head importance",
                 "correct and compare", "long input (120 words)", "batch of 4"):
        assert want in names, names
    fwd = next(r for r in doc["rows"] if r["feature"] == "forward")
    assert fwd["x_fwd"] == 1.0 and all(r["seconds"] >= 0 for r in doc["rows"])
    assert "| head importance |" in (tmp_path / "bf.md").read_text()
