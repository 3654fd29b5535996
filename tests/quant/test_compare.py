"""`heta-lite quant-compare` end to end (quant/compare.py, quant/command.py): real bitsandbytes
layers (its CPU backend) on a tiny random Llama saved as a folder; agreement numbers are checked
against scipy directly. The command reaches the CLI through the `heta_lite.commands` entry point."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

bnb = pytest.importorskip("bitsandbytes")


def test_quant_compare_end_to_end(tiny_folder, tmp_path, capsys):
    from heta_lite.cli import main

    data = tmp_path / "items.jsonl"
    data.write_text("\n".join(json.dumps({"id": f"it{i}", "prompt": p, "answer": a}) for i, (p, a) in enumerate([
        ("The capital of France is", "Paris"), ("Two plus two equals", "four"),
        ("The cat sat on the", "mat")])) + "\n")
    out = tmp_path / "cmp"
    rc = main(["quant-compare", "--model", tiny_folder, "--device", "cpu", "--modes", "none,4bit,8bit",
               "--dataset", str(data), "--presets", "fast", "--seeds", "2", "--draws", "2", "--out", str(out)])
    assert rc == 0
    summary = json.loads((out / "compare.json").read_text())
    assert [m["mode"] for m in summary["modes"]] == ["none", "4bit-nf4", "8bit"]
    none, nf4, int8 = summary["modes"]
    assert none["agreement"] is None and none["derivative_paths"] == []
    assert nf4["derivative_paths"] == ["quantized-layers"]
    assert int8["derivative_paths"] in (["quantized-layers"], ["dequantized-weights"])
    runs = summary["runs"]
    assert len(runs["4bit-nf4"]) == 3 and len(runs["none"][0]["seed_S"]) == 2

    def spearman(a, b, scored):  # scipy directly, over the scored tokens only
        keep = np.asarray(scored, bool)
        return stats.spearmanr(np.asarray(a)[keep], np.asarray(b)[keep]).statistic

    ref = {r["item"]: r for r in runs["none"]}
    for m in (nf4, int8):
        rs = runs[m["mode"]]
        for comp in ("M", "S", "I", "final"):
            stat = m["agreement"]["fast"][comp]["spearman"]
            vec = (lambda r: r["final"]) if comp == "final" else (lambda r, c=comp: r["components"][c])
            per_item = [spearman(vec(ref[r["item"]]), vec(r), ref[r["item"]]["scored"]) for r in rs]
            assert stat["n"] == 3 and stat["mean"] == pytest.approx(np.mean(per_item), abs=1e-12)
        assert m["agreement"]["fast"]["M"]["spearman"]["mean"] > 0.9  # the gate barely moves under quantization
        assert m["footprint_bytes"] < none["footprint_bytes"]  # quantized weights are smaller
        wins = [float(r["aopc"] > r["aopc_random"]) for r in rs]
        assert m["faithfulness"]["win_vs_random"]["mean"] == pytest.approx(np.mean(wins))
        within = [spearman(r["seed_S"][0], r["seed_S"][1], r["scored"]) for r in rs]  # 2 seeds: one pair
        assert m["hessian_stability"]["within_mode_spearman"]["mean"] == pytest.approx(np.mean(within), abs=1e-12)
        assert all(r["seed_S"][0] == r["components"]["S"] for r in rs)  # seed 0 is the main run
    assert (summary["config"]["frame"], summary["config"]["gate"]) == ("auto", "last-quarter")  # the defaults
    assert all(not r["scored"][0] for rs in runs.values() for r in rs)  # position 0 is the frame, never scored
    md = (out / "compare.md").read_text()
    assert "frame auto, gate last-quarter" in md
    assert "Agreement with `none`" in md and "Hessian stability" in md and "| 8bit |" in md
    assert {p.name for p in out.glob("*.png")} == {"latency.png", "agreement.png", "hessian_stability.png"}


def test_quant_compare_rejects_bad_modes(tmp_path):
    from heta_lite.cli import main

    assert main(["quant-compare", "--modes", "none", "--dataset", "x.jsonl", "--out", str(tmp_path)]) == 2
    assert main(["quant-compare", "--modes", "none,5bit", "--dataset", "x.jsonl", "--out", str(tmp_path)]) == 2


def test_quant_compare_is_a_plugin_command_of_the_core_cli():
    """The core lists it through the entry-point group, never by importing quant/ itself."""
    from importlib.metadata import entry_points

    from heta_lite.cli import PLUGIN_GROUP, build_parser

    names = {ep.name: ep.value for ep in entry_points(group=PLUGIN_GROUP)}
    assert names.get("quant-compare") == "quant.command:add_parser"
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert "quant-compare" in sub.choices
