"""Exploring a prediction beyond attribution: next-token distribution, logit lens, attention."""
from __future__ import annotations

import torch

from .models.loader import LoadedModel
from .tokens import raw_piece_display


def _display(lm: LoadedModel, tid: int) -> str:
    return raw_piece_display(lm.tokenizer, tid) if lm.tokenizer is not None else str(tid)


@torch.no_grad()
def next_token(lm: LoadedModel, ids: list[int], k: int = 10) -> list[dict]:
    """Top-k next tokens after `ids` with probabilities."""
    logits = lm.model(input_ids=torch.tensor([ids], device=lm.device), use_cache=False, logits_to_keep=1).logits[0, -1]
    p = torch.softmax(logits.float(), -1)
    top_p, top_i = p.topk(k)
    return [{"id": int(i), "text": _display(lm, int(i)), "prob": float(q)} for q, i in zip(top_p, top_i)]


@torch.no_grad()
def prob_of(lm: LoadedModel, ids: list[int], token_id: int) -> float:
    """p(token_id) as the next token after `ids` (float64 softmax)."""
    logits = lm.model(input_ids=torch.tensor([ids], device=lm.device), use_cache=False, logits_to_keep=1).logits[0, -1]
    return float(torch.softmax(logits.double(), -1)[token_id])


@torch.no_grad()
def logit_lens(lm: LoadedModel, ids: list[int], target_id: int, k: int = 3) -> list[dict]:
    """For the predicting position: each layer's top-k tokens and p(target), reading the residual
    stream after that layer through the final norm and the LM head."""
    out = lm.model(input_ids=torch.tensor([ids], device=lm.device), output_hidden_states=True, use_cache=False)
    hidden = out.hidden_states  # embeddings, then one per layer (the last one already normed)
    norm = lm.arch.get(lm.model, lm.arch.final_norm)
    head = lm.model.get_output_embeddings()
    rows = []
    L = len(hidden) - 1
    for layer in range(1, L + 1):
        h = hidden[layer][0, -1]
        logits = out.logits[0, -1] if layer == L else head(norm(h[None]))[0]
        p = torch.softmax(logits.float(), -1)
        top_p, top_i = p.topk(k)
        rows.append({"layer": layer, "p_target": float(p[target_id]),
                     "top": [{"id": int(i), "text": _display(lm, int(i)), "prob": float(q)} for q, i in zip(top_p, top_i)]})
    return rows


@torch.no_grad()
def attention_from_target(lm: LoadedModel, ids: list[int], layer: int, head: int | None = None) -> list[float]:
    """Attention of the predicting position over the context at `layer` (0-based), one head or the mean."""
    out = lm.model(input_ids=torch.tensor([ids], device=lm.device), output_attentions=True, use_cache=False)
    A = out.attentions[layer][0, :, -1, :].float()  # (H, n)
    row = A.mean(0) if head is None else A[head]
    return [float(x) for x in row]
