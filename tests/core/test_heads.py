"""Head importance against a per-head loop (one forward per head, the head's slice of the W_O input
zeroed by hand), on tiny models of families whose W_O differs (Linear with GQA; GPT-2's Conv1D)."""
from __future__ import annotations

import pytest
import torch

from heta_lite.heads import head_importance
from heta_lite.models import wrap_model
from heta_lite.models.loader import attention_implementation
from tests.reference.tiny import TINY_BUILDERS

IDS = [3, 17, 5, 9, 22, 41, 8, 13]
TARGET = 7


def _loop(lm, ids, target):
    """One plain forward per (layer, head); no batching, no shared hook. Same attention kernel
    (SDPA) as the code under test: eager attention takes its softmax in float32, which alone moves
    log p by ~1e-7 and is not what this test is about."""
    H, dh = lm.dims.num_heads, lm.dims.head_dim
    x = torch.tensor([ids])
    lp = lambda out: torch.log_softmax(out.logits[0, -1].double(), -1)[target]  # noqa: E731
    with torch.no_grad(), attention_implementation(lm.model, "sdpa"):
        base = lp(lm.model(input_ids=x, use_cache=False))
        rows = []
        for block in lm.arch.blocks(lm.model):
            proj = getattr(lm.arch.attention(block), lm.arch.out_proj)
            row = []
            for h in range(H):
                def hook(_m, args, h=h):
                    z = args[0].clone()
                    z[..., h * dh:(h + 1) * dh] = 0
                    return (z,)
                handle = proj.register_forward_pre_hook(hook)
                row.append(float(base - lp(lm.model(input_ids=x, use_cache=False))))
                handle.remove()
            rows.append(row)
    return float(base), rows


@pytest.mark.parametrize("family", ["qwen2", "gpt2", "llama"])
@pytest.mark.parametrize("max_batch", [None, 3])
def test_batched_head_importance_equals_the_per_head_loop(family, max_batch):
    torch.manual_seed(0)
    lm = wrap_model(TINY_BUILDERS[family](torch.float64))
    base, ref = _loop(lm, IDS, TARGET)
    got = head_importance(lm, IDS, TARGET, max_batch=max_batch)
    assert got.layers == len(ref) and got.heads == len(ref[0])
    assert got.logprob == pytest.approx(base, abs=1e-9)
    assert torch.tensor(got.drop) == pytest.approx(torch.tensor(ref), abs=1e-8)
    assert max(abs(v) for row in got.drop for v in row) > 1e-6  # zeroing a head does change p(y)
    l, h, v = got.top(1)[0]
    assert v == max(max(r) for r in got.drop) and got.drop[l][h] == v


def test_head_importance_goes_into_a_valid_report(tmp_path):
    from heta_lite import HetaSettings, TargetSpec
    from heta_lite.engine import explain_context, make_context
    from heta_lite.report import Report
    from tests.core.test_frame import FAMILIES, TEXT, family_tokenizer

    specials, bos, eos, adds_bos, *_ = FAMILIES["qwen2"]
    lm = wrap_model(TINY_BUILDERS["qwen2"](torch.float32), family_tokenizer(specials, bos, eos, adds_bos))
    s = HetaSettings.preset("fast", num_probes=1)
    ctx = make_context(lm, TEXT, TargetSpec(position=5, chat=False), s)
    heads = head_importance(lm, list(ctx.input_ids), ctx.target_id)
    back = Report.load(Report.from_explanation(explain_context(lm, ctx, s), head_importance=heads).save(tmp_path / "r.json"))
    assert torch.tensor(back.document["head_importance"]["drop"]) == pytest.approx(torch.tensor(heads.drop))
    assert back.document["head_importance"]["logprob"] == pytest.approx(back.target["logprob"], abs=1e-5)
