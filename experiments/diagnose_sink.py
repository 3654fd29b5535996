"""Why HETA loses on the distractor/evidence set: is the gate M dominated by an attention sink?

    .venv/bin/python experiments/diagnose_sink.py --limit 12 > experiments/results/sink_diagnosis.md

A diagnosis, not a change to the method: on the first N items of experiments/data/dsa_qa.jsonl
(fast preset) it reports, per variant, DSA, AOPC (zero-embedding deletion) and the share of the
gate's mass on the first context token:
  heta            the method as shipped (SmolLM2 adds no BOS in plain mode, so the first word of
                  the distractor is the first token);
  heta, M minus sink   post hoc: the same S, I and M, with M's first-token mass removed and M
                  renormalised before M * (S + I)/2 (what HETA would give if the sink did not
                  count as information flow);
  heta + BOS      the tokenizer's BOS (<|im_start|>) prepended as an unscored special token, so the
                  model has a content-free position to park attention on (scores and metrics over
                  the same scored tokens; the target's rank is reported because the input changed).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from heta_lite.control import JobControl  # noqa: E402
from heta_lite.faithfulness.datasets import load_items  # noqa: E402
from heta_lite.faithfulness.evaluate import item_context  # noqa: E402
from heta_lite.faithfulness.metrics import deletion, deletion_random, dsa, k_values  # noqa: E402
from heta_lite.methods import MethodInput, get_method  # noqa: E402
from heta_lite.methods.heta.combine import normalise_scored  # noqa: E402
from heta_lite.models import load_model  # noqa: E402
from heta_lite.settings import HetaSettings  # noqa: E402


def run_method(lm, name, ids, scored, y, settings):
    X = lm.model.get_input_embeddings()(torch.tensor(ids)).detach()
    res = get_method(name).attribute(MethodInput(lm=lm, input_ids=torch.tensor(ids), X=X, target_id=y,
                                                 scored=torch.tensor(scored), settings=settings,
                                                 control=JobControl()))
    return X, res


def rank_of(lm, X, y):
    with torch.no_grad():
        lg = lm.model(inputs_embeds=X[None], use_cache=False, logits_to_keep=1).logits[0, -1]
    return int((lg > lg[y]).sum()) + 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=12)
    ap.add_argument("--dataset", default=str(ROOT / "experiments/data/dsa_qa.jsonl"))
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    lm = load_model("smollm2-135m", device="cpu")
    settings = HetaSettings.preset("fast")
    items, _ = load_items(args.dataset)
    rows = []
    for it in items[: args.limit]:
        ctx = item_context(lm, it, settings)
        ids, y = list(ctx.input_ids), ctx.target_id
        scored = np.asarray(ctx.scored)
        spans = [(t.start, t.end) for t in ctx.context_tokens]
        ev, di = it.segments["evidence"], it.segments["distractor"]
        ks = k_values(int(scored.sum()))
        X, res = run_method(lm, "heta", ids, scored, y, settings)
        rnd = deletion_random(lm, X, y, scored, "zero", ks, 5, 0)
        M, S, I = (res.components[k].normalised for k in "MSI")
        first = int(np.flatnonzero(scored)[0])
        M2 = M.copy()
        M2[first] = 0
        M2 = normalise_scored(M2, scored)
        no_sink = M2 * (0.5 * S + 0.5 * I)
        variants = {"heta": (res.scores, M), "heta, M minus sink": (no_sink, M2)}
        out = {"item": it.id, "rank": rank_of(lm, X, y), "aopc_random": float(np.mean(rnd[1]))}
        for name, (sc, gate) in variants.items():
            w = normalise_scored(sc, scored)
            out[name] = {"dsa": dsa(w, spans, ev, di), "gate_first_mass": float(gate[first]),
                         "aopc_zero": deletion(lm, X, y, sc, scored, "zero", ks, random=rnd).aopc_top}
        # BOS prepended (unscored): positions shift by one, spans of BOS empty
        bos = lm.tokenizer.bos_token_id
        ids_b, scored_b, spans_b = [bos] + ids, np.concatenate([[False], scored]), [(0, 0)] + spans
        Xb, resb = run_method(lm, "heta", ids_b, scored_b, y, settings)
        rnd_b = deletion_random(lm, Xb, y, scored_b, "zero", ks, 5, 0)
        Mraw = resb.components["M"].raw  # raw is zeroed at unscored tokens: recompute BOS share from the gate
        from heta_lite.methods.heta.gate import gate_scores

        Mb = gate_scores(lm, Xb).M_raw.double().numpy()
        wb = normalise_scored(resb.scores, scored_b)
        out["heta + BOS"] = {"dsa": dsa(wb, spans_b, ev, di), "rank": rank_of(lm, Xb, y),
                             "gate_bos_share": float(max(Mb[0], 0) / np.clip(Mb, 0, None).sum()),
                             "gate_first_mass": float(resb.components["M"].normalised[first + 1]),
                             "aopc_zero": deletion(lm, Xb, y, resb.scores, scored_b, "zero", ks, random=rnd_b).aopc_top,
                             "aopc_random": float(np.mean(rnd_b[1]))}
        del Mraw
        rows.append(out)
        print(json.dumps(out), file=sys.stderr)
    print("# Attention-sink diagnosis (HETA on the distractor/evidence set)\n")
    print(f"Command: `.venv/bin/python experiments/diagnose_sink.py --limit {args.limit}`; SmolLM2-135M, fast "
          f"preset, first {len(rows)} items of experiments/data/dsa_qa.jsonl. Means over items.\n")
    print("| variant | DSA | AOPC zero | random AOPC | gate mass on first content token |")
    print("|---|---|---|---|---|")
    for name in ("heta", "heta, M minus sink", "heta + BOS"):
        d = np.mean([r[name]["dsa"] for r in rows])
        a = np.mean([r[name]["aopc_zero"] for r in rows])
        ra = np.mean([r[name].get("aopc_random", r["aopc_random"]) for r in rows])
        f = np.mean([r[name]["gate_first_mass"] for r in rows])
        print(f"| {name} | {d:.3f} | {a:.3f} | {ra:.3f} | {f:.3f} |")
    print(f"\nWith BOS: the gate's raw mass on BOS itself is {np.mean([r['heta + BOS']['gate_bos_share'] for r in rows]):.3f} "
          f"of the total (unscored, so it leaves the normalisation); target top-1 without BOS in "
          f"{sum(r['rank'] == 1 for r in rows)}/{len(rows)} items, with BOS in "
          f"{sum(r['heta + BOS']['rank'] == 1 for r in rows)}/{len(rows)}.")
    Path(ROOT / "experiments/results/sink_diagnosis.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
