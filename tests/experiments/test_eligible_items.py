"""The eligibility pre-pass (experiments/eligible_items.py) must rank each target exactly as the
evaluation's own rows do, under both frames: it decides which items the expensive run skips."""
import json

from experiments.eligible_items import FRAMES, ranks
from heta_lite.faithfulness.datasets import load_items
from heta_lite.faithfulness.evaluate import evaluate
from heta_lite.settings import HetaSettings


def test_pre_pass_ranks_match_the_rows_of_the_evaluation(smollm, tmp_path):
    data = tmp_path / "d.jsonl"
    prompts = [("a", "The capital of France is", "Paris"), ("b", "Two plus two equals", "four"),
               ("c", "The opposite of hot is", "zebra")]  # c: a target far outside the top-5
    data.write_text("".join(json.dumps({"id": i, "prompt": p, "answer": a}) + "\n" for i, p, a in prompts))
    items, _ = load_items(data)
    settings = HetaSettings.preset("balanced")
    pre = {r["item"]: r for r in ranks(smollm, items, settings)}
    assert set(pre) == {"a", "b", "c"} and pre["c"]["rank_auto"] > 5
    for frame in FRAMES:
        evaluate(smollm, items, ["attention"], settings.replace(frame=frame), tmp_path / frame, draws=1,
                 metrics="selection")
        rows = [json.loads(x) for x in (tmp_path / frame / "results.jsonl").read_text().splitlines()]
        got = {r["item"]: r["target_rank"] for r in rows}
        want = {i: pre[i][f"rank_{frame}"] for i in pre}
        assert set(got) == set(want)
        for i in got:  # near the top-5 exactly; far below it, another kernel may swap two near-equal tails
            assert got[i] == want[i] if want[i] <= 10 else abs(got[i] - want[i]) <= 0.001 * want[i]
        assert all(abs(r["p_target"] - pre[r["item"]][f"p_{frame}"]) < 1e-5 for r in rows)
