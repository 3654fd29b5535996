"""Anomaly flags for an input and its run (issue #17): signals that say "this prediction is unlike
the ones the method was measured on", so a user reads its explanation with care.

Signals, all read at the predicting (last) position of the framed context:
- repetition: 1 - distinct 4-grams / 4-grams of the context ids (0 = no repeated 4-gram;
  degenerate loops approach 1);
- attention_entropy: entropy of each head's attention row, divided by log(n) (so 0..1 whatever the
  length), averaged over heads and layers (collapse: near 0; a row spread flat: near 1);
- activation_ratio: the largest over layers of the residual stream's RMS divided by that layer's
  median RMS on the calibration set (an exploding activation shows as a large ratio);
- target_prob: p(y) below 1e-4 (the issue's fixed threshold).

Thresholds come from measured percentiles (0.5th and 99.5th, so about 1% of in-distribution
prompts raise each two-sided flag by chance) of the evaluation prompts, per model, written by
`python -m experiments.anomaly_thresholds` into heta_lite/data/anomaly_thresholds.json. A model
without measured thresholds gets only the model-independent flags (repetition, target_prob), and
the report says the others were not calibrated for it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .data import shipped_json
from .models.loader import LoadedModel, attention_implementation

TARGET_PROB_MIN = 1e-4
NGRAM = 4


@dataclass
class Signals:
    repetition: float
    attention_entropy: float
    layer_rms: list[float]  # per layer, at the last position
    lens_settle: float = 1.0  # first depth (fraction of layers) from which the logit lens keeps the final top-1

    def activation_ratio(self, medians: list[float]) -> float:
        return max(r / m for r, m in zip(self.layer_rms, medians) if m > 0)


@dataclass
class AnomalyReport:
    flags: list[str]  # names of the raised flags, e.g. ["attention_collapse"]
    values: dict[str, float]
    thresholds: dict[str, Any]
    calibrated: bool  # thresholds measured for this model
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def repetition(ids: list[int], n: int = NGRAM) -> float:
    grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)


@torch.no_grad()
def signals(lm: LoadedModel, ids: list[int]) -> Signals:
    """One eager forward with attentions and hidden states."""
    x = torch.tensor([ids], device=lm.device)
    with attention_implementation(lm.model, "eager"):
        out = lm.model(input_ids=x, output_attentions=True, output_hidden_states=True, use_cache=False,
                       logits_to_keep=1)
    n = len(ids)
    ents = []
    for A in out.attentions:  # (1, H, n, n)
        row = A[0, :, -1, :].double().clamp_min(1e-30)
        h = -(row * row.log()).sum(-1)
        ents.append(float((h / math.log(n)).mean()) if n > 1 else 1.0)
    d = out.hidden_states[0].shape[-1]
    rms = [float(h[0, -1].double().norm() / math.sqrt(d)) for h in out.hidden_states[1:]]
    return Signals(repetition=repetition(ids), attention_entropy=sum(ents) / len(ents), layer_rms=rms,
                   lens_settle=lens_settle(lm, out.hidden_states, out.logits[0, -1]))


def lens_settle(lm: LoadedModel, hidden_states, final_logits: torch.Tensor) -> float:
    """The logit lens's settling depth: the smallest l / L such that layers l..L all have the final
    prediction as their top-1 (each layer's last hidden state through the final norm and the LM
    head; the last hidden state is already normed). 1.0 = only the last layer has it."""
    norm = lm.arch.get(lm.model, lm.arch.final_norm)
    head = lm.model.get_output_embeddings()
    L = len(hidden_states) - 1
    final = int(final_logits.argmax())
    tops = [int(head(norm(h[:, -1]))[0].argmax()) for h in hidden_states[1:L]] + [final]
    settle = L
    while settle > 1 and tops[settle - 2] == final:
        settle -= 1
    return settle / L


def _all_thresholds() -> dict[str, Any]:
    return shipped_json("anomaly_thresholds.json")


def thresholds_for(model_name: str) -> dict[str, Any] | None:
    return _all_thresholds().get("models", {}).get(model_name)


def anomaly_flags(lm: LoadedModel, ids: list[int], target_prob: float, model_name: str | None = None) -> AnomalyReport:
    s = signals(lm, ids)
    th = thresholds_for(model_name or lm.name)
    flags, notes = [], []
    values: dict[str, float] = {"repetition": s.repetition, "attention_entropy": s.attention_entropy,
                                "target_prob": target_prob, "lens_settle": s.lens_settle}
    used: dict[str, Any] = {"target_prob_min": TARGET_PROB_MIN}
    if target_prob < TARGET_PROB_MIN:
        flags.append("unlikely_target")
    rep_max = th["repetition"]["p99_5"] if th else 0.5
    used["repetition_max"] = rep_max
    if s.repetition > rep_max:
        flags.append("degenerate_repetition")
    if th is None:
        notes.append("attention and activation flags are not calibrated for this model (thresholds are measured "
                      "per model: python -m experiments.anomaly_thresholds); repetition uses 0.5")
    else:
        values["activation_ratio"] = s.activation_ratio(th["layer_rms_median"])
        ent, act = th["attention_entropy"], th["activation_ratio"]
        used.update(attention_entropy=[ent["p0_5"], ent["p99_5"]], activation_ratio=[act["p0_5"], act["p99_5"]])
        if not ent["p0_5"] <= s.attention_entropy <= ent["p99_5"]:
            flags.append("attention_collapse" if s.attention_entropy < ent["p0_5"] else "attention_diffuse")
        if not act["p0_5"] <= values["activation_ratio"] <= act["p99_5"]:
            flags.append("activation_norm")
    return AnomalyReport(flags=flags, values=values, thresholds=used, calibrated=th is not None, notes=notes)
