"""Head importance (issue #17): for each layer l and head h, how much log p(y) drops when head h's
output is zeroed at every position,

    drop[l, h] = log p(y | x) - log p(y | x, head (l, h) zeroed),

with y read at the last position of the (framed) context. Zeroing acts on the input of the
attention's output projection W_O (the concatenated heads), so it is the same on every family of
the architecture table (Linear or GPT-2's Conv1D, grouped-query attention included). All heads of
a layer run as one batch of copies, each with one head zeroed: about one batched forward per layer.
Positive = the head helps the prediction; negative = the prediction is surer without it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .control import NO_CONTROL, JobControl
from .models.loader import LoadedModel, attention_implementation


@dataclass
class HeadImportance:
    layers: int
    heads: int
    logprob: float  # log p(y) with every head in place
    drop: list[list[float]]  # [layer][head]

    def to_dict(self) -> dict:
        return asdict(self)

    def top(self, k: int = 5) -> list[tuple[int, int, float]]:
        """(layer, head, drop) of the k heads whose removal hurts the prediction most."""
        cells = [(l, h, v) for l, row in enumerate(self.drop) for h, v in enumerate(row)]
        return sorted(cells, key=lambda c: -c[2])[:k]


def _target_logprob(logits: torch.Tensor, target_id: int) -> torch.Tensor:
    return torch.log_softmax(logits[:, -1].double(), dim=-1)[:, target_id]


@torch.no_grad()
def head_importance(lm: LoadedModel, ids: list[int], target_id: int, control: JobControl = NO_CONTROL,
                    max_batch: int | None = None) -> HeadImportance:
    """drop[l, h] for every layer and head; `max_batch` copies per pass (default: all heads of a layer)."""
    dims = lm.dims
    H, dh = dims.num_heads, dims.head_dim
    blocks = lm.arch.blocks(lm.model)
    x = torch.tensor([ids], device=lm.device)
    B = max(1, min(H, max_batch or H))
    with attention_implementation(lm.model, "sdpa"):
        base = float(_target_logprob(lm.model(input_ids=x, use_cache=False, logits_to_keep=1).logits, target_id)[0])
        drop = []
        for layer, block in enumerate(blocks):
            control.step("head importance", layer, len(blocks))
            proj = getattr(lm.arch.attention(block), lm.arch.out_proj)
            row: list[float] = []
            for h0 in range(0, H, B):
                heads = list(range(h0, min(H, h0 + B)))
                keep = torch.ones(len(heads), 1, H, dh, device=lm.device)
                keep[torch.arange(len(heads)), 0, torch.tensor(heads)] = 0.0  # copy b: head heads[b] zeroed

                def zero_heads(_module, args, keep=keep):
                    z = args[0]
                    return (z * keep.reshape(len(heads), 1, H * dh).to(z.dtype),) + tuple(args[1:])

                handle = proj.register_forward_pre_hook(zero_heads)
                try:
                    out = lm.model(input_ids=x.expand(len(heads), -1), use_cache=False, logits_to_keep=1)
                finally:
                    handle.remove()
                row += [base - float(v) for v in _target_logprob(out.logits, target_id)]
            drop.append(row)
        control.step("head importance", len(blocks), len(blocks))
    return HeadImportance(layers=len(blocks), heads=H, logprob=base, drop=drop)
