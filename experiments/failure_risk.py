"""Fit and measure the failure-risk model (heta_lite/risk.py) for one model.

    python -m experiments.failure_risk [--model smollm2-135m] [--quality fast]

1. The labelled set (experiments/data/failure_qa.jsonl, written by `build_items` if missing):
   closed-book questions whose answers are known here and never appear in the prompt (two worked
   examples, then "Question: What is the capital of Peru?\\nAnswer:").
2. For each question the model answers greedily (8 new tokens); the answer is right when the known
   answer appears in its first line as a whole word (case-insensitive). HETA (--quality, default fast: the
   GUI's default) explains the first answer token; its report gives the features.
3. A logistic model (standardised features, L2 = 1.0, fitted by scipy's L-BFGS) on the even
   question numbers; accuracy (threshold 0.5) and AUC on the odd ones, with 95% bootstrap intervals.
   The coefficients and the held-out numbers are shipped in heta_lite/data/failure_risk.json.
Rows are cached in experiments/results/failure_risk_rows.jsonl (re-runs resume).
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.stats import rankdata

from heta_lite import HetaSettings, TargetSpec, explain, load_model
from heta_lite.risk import FEATURES

try:
    from experiments.common import RESULTS, write_results
except ImportError:
    from common import RESULTS, write_results

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "experiments/data/failure_qa.jsonl"
SHIPPED = ROOT / "heta_lite/data/failure_risk.json"

CAPITALS = [("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"),
            ("China", "Beijing"), ("Russia", "Moscow"), ("Egypt", "Cairo"), ("Canada", "Ottawa"),
            ("Australia", "Canberra"), ("Brazil", "Brasilia"), ("Argentina", "Buenos Aires"), ("Peru", "Lima"),
            ("Chile", "Santiago"), ("Mexico", "Mexico City"), ("Portugal", "Lisbon"), ("Greece", "Athens"),
            ("Turkey", "Ankara"), ("Poland", "Warsaw"), ("Austria", "Vienna"), ("Hungary", "Budapest"),
            ("Sweden", "Stockholm"), ("Norway", "Oslo"), ("Finland", "Helsinki"), ("Denmark", "Copenhagen"),
            ("Ireland", "Dublin"), ("Belgium", "Brussels"), ("Netherlands", "Amsterdam"), ("Switzerland", "Bern"),
            ("Czech Republic", "Prague"), ("Romania", "Bucharest"), ("Bulgaria", "Sofia"), ("Serbia", "Belgrade"),
            ("Ukraine", "Kyiv"), ("India", "New Delhi"), ("Pakistan", "Islamabad"), ("Thailand", "Bangkok"),
            ("Vietnam", "Hanoi"), ("Indonesia", "Jakarta"), ("Philippines", "Manila"), ("South Korea", "Seoul"),
            ("Kenya", "Nairobi"), ("Nigeria", "Abuja"), ("Ethiopia", "Addis Ababa"), ("Morocco", "Rabat"),
            ("Iran", "Tehran"), ("Iraq", "Baghdad"), ("Saudi Arabia", "Riyadh"), ("Israel", "Jerusalem"),
            ("Colombia", "Bogota"), ("Venezuela", "Caracas"), ("Cuba", "Havana"), ("New Zealand", "Wellington"),
            ("Iceland", "Reykjavik"), ("Scotland", "Edinburgh"), ("Wales", "Cardiff"), ("Croatia", "Zagreb"),
            ("Slovakia", "Bratislava"), ("Lithuania", "Vilnius"), ("Latvia", "Riga"), ("Estonia", "Tallinn")]
OPPOSITES = [("hot", "cold"), ("big", "small"), ("up", "down"), ("fast", "slow"), ("happy", "sad"), ("day", "night"),
             ("light", "dark"), ("old", "young"), ("open", "closed"), ("rich", "poor"), ("hard", "soft"),
             ("wet", "dry"), ("early", "late"), ("full", "empty"), ("strong", "weak"), ("left", "right"),
             ("inside", "outside"), ("true", "false"), ("win", "lose"), ("buy", "sell"), ("push", "pull"),
             ("heavy", "light"), ("tall", "short"), ("thick", "thin"), ("love", "hate")]
COLOURS = [("the sky on a clear day", "blue"), ("grass", "green"), ("snow", "white"), ("coal", "black"),
           ("a ripe banana", "yellow"), ("a ripe tomato", "red"), ("a ripe pumpkin", "orange"), ("milk", "white"),
           ("a lemon", "yellow"), ("blood", "red")]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]


def build_items() -> list[dict]:
    """The labelled questions, in a fixed order; `id` numbers set the split (even = fit, odd = test)."""
    q: list[tuple[str, str]] = [(f"What is the capital of {c}?", a) for c, a in CAPITALS]
    q += [(f"What is the opposite of {w}?", a) for w, a in OPPOSITES]
    q += [(f"What colour is {x}?", a) for x, a in COLOURS]
    q += [(f"What day comes after {DAYS[i]}?", DAYS[(i + 1) % 7]) for i in range(7)]
    q += [(f"What month comes after {MONTHS[i]}?", MONTHS[(i + 1) % 12]) for i in range(12)]
    rng = np.random.default_rng(0)
    for _ in range(40):
        a, b = (int(x) for x in rng.integers(1, 30, size=2))
        q.append((f"What is {a} plus {b}?", str(a + b)))
    q += [(f"What number comes after {NUMBERS[i]}?", NUMBERS[i + 1]) for i in range(len(NUMBERS) - 1)]
    return [{"id": f"fq-{i:03d}", "question": text, "answer": ans} for i, (text, ans) in enumerate(q)]


# Two worked examples, so that an instruction-tuned model answers with the answer's first token (a
# bare "Question: ...\nAnswer:" makes SmolLM2-Instruct end its turn at once). Their answers occur in
# no question of the set (tests/core/test_risk.py checks every prompt for its own answer).
SHOTS = ("Question: What is the largest ocean on Earth?\nAnswer: the Pacific\n\n"
         "Question: Who wrote the play Hamlet?\nAnswer: Shakespeare\n\n")


def prompt_of(item: dict) -> str:
    return f"{SHOTS}Question: {item['question']}\nAnswer:"


def is_right(answer: str, generated: str) -> bool:
    return re.search(r"(?<![\w])" + re.escape(answer.lower()) + r"(?![\w])", generated.lower()) is not None


def collect(lm, items: list[dict], quality: str, rows_path: Path) -> list[dict]:
    done = {}
    if rows_path.exists():
        done = {r["id"]: r for r in map(json.loads, rows_path.read_text().splitlines())}
    settings = HetaSettings.preset(quality)
    with rows_path.open("a") as fh:
        for k, it in enumerate(items, 1):
            if it["id"] in done:
                continue
            exp = explain(lm, prompt_of(it), TargetSpec(generated=0, max_new_tokens=8, chat=False), settings)
            gen = exp.context.text[exp.context.tokens[exp.context.prompt_len].start:]
            answer_line = gen.split("\n")[0]  # the model may go on with a next "Question:"
            row = {"id": it["id"], "right": is_right(it["answer"], answer_line), "generated": gen,
                   "features": exp.risk["features"]}
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            done[it["id"]] = row
            print(f"\r{k}/{len(items)}", end="", flush=True)
    print()
    return [done[it["id"]] for it in items]


def fit(X: np.ndarray, y: np.ndarray, l2: float = 1.0) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Logistic regression of y (1 = wrong) on standardised X; returns (w, b, mean, std)."""
    mean, std = X.mean(0), X.std(0)
    std[std == 0] = 1.0
    Z = (X - mean) / std

    def loss(theta):
        w, b = theta[:-1], theta[-1]
        t = Z @ w + b
        nll = np.sum(np.logaddexp(0, t) - y * t)
        grad_t = 1 / (1 + np.exp(-t)) - y
        return nll + 0.5 * l2 * w @ w, np.concatenate([Z.T @ grad_t + l2 * w, [grad_t.sum()]])

    res = minimize(loss, np.zeros(Z.shape[1] + 1), jac=True, method="L-BFGS-B")
    return res.x[:-1], float(res.x[-1]), mean, std


def auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = y == 1, y == 0
    if not pos.any() or not neg.any():
        return float("nan")
    r = rankdata(s)
    return float((r[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * neg.sum()))


def bootstrap(y, p, stat, n=2000, seed=0) -> list[float]:
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        v = stat(y[i], p[i])
        if np.isfinite(v):
            vals.append(v)
    return [float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--quality", default="fast")
    p.add_argument("--limit", type=int)
    args = p.parse_args(argv)
    if not DATA.exists():
        DATA.write_text("".join(json.dumps(it) + "\n" for it in build_items()))
    items = [json.loads(line) for line in DATA.read_text().splitlines()][: args.limit]
    lm = load_model(args.model, device="cpu")
    rows = collect(lm, items, args.quality, RESULTS / f"failure_risk_rows_{lm.name}.jsonl")
    X = np.asarray([[r["features"][k] for k in FEATURES] for r in rows], dtype=float)
    y = np.asarray([0 if r["right"] else 1 for r in rows], dtype=float)
    even = np.asarray([int(r["id"].split("-")[1]) % 2 == 0 for r in rows])
    w, b, mean, std = fit(X[even], y[even])
    p_test = 1 / (1 + np.exp(-(((X[~even] - mean) / std) @ w + b)))
    y_test = y[~even]
    acc = lambda yy, pp: float(np.mean((pp >= 0.5) == (yy == 1)))  # noqa: E731
    test = {"n": int((~even).sum()), "wrong_rate": float(y_test.mean()), "accuracy": acc(y_test, p_test),
            "accuracy_ci95": bootstrap(y_test, p_test, acc), "auc": auc(y_test, p_test),
            "auc_ci95": bootstrap(y_test, p_test, auc),
            "majority_baseline_accuracy": float(max(y_test.mean(), 1 - y_test.mean()))}
    model = {"features": list(FEATURES), "weights": [float(v) for v in w], "bias": b, "mean": [float(v) for v in mean],
             "std": [float(v) for v in std], "fitted_on": f"{int(even.sum())} questions of {DATA.name} (even ids), "
             f"heta {args.quality}", "test": test}
    shipped = json.loads(SHIPPED.read_text()) if SHIPPED.exists() else {"models": {}}
    shipped["source"] = "python -m experiments.failure_risk"
    shipped["models"][lm.name] = model
    SHIPPED.write_text(json.dumps(shipped, indent=2) + "\n")
    table = [["accuracy (threshold 0.5)", test["accuracy"], f"[{test['accuracy_ci95'][0]:.3f}, {test['accuracy_ci95'][1]:.3f}]"],
             ["AUC", test["auc"], f"[{test['auc_ci95'][0]:.3f}, {test['auc_ci95'][1]:.3f}]"],
             ["majority-class accuracy", test["majority_baseline_accuracy"], "-"],
             ["share of wrong answers", test["wrong_rate"], "-"]]
    table += [[f"weight: {k}", float(v), "standardised"] for k, v in zip(FEATURES, w)]
    write_results(f"failure_risk_{lm.name}", {"model": model, "n_fit": int(even.sum())},
                  ["held-out (odd ids)", "value", "95% bootstrap"], table,
                  f"python -m experiments.failure_risk --model {args.model} --quality {args.quality}",
                  notes=f"{len(rows)} closed-book questions ({DATA.name}); answers never in the prompt. "
                        "A toolkit claims 85% failure prediction: this is what this model reaches here.")
    print(json.dumps(test, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
