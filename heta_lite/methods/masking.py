"""Masked copies of a context, run efficiently: what replaces a masked token (`mask_vector`) and
the last-position logits of each copy with one token masked (`masked_last_logits`). Shared by
HETA's information gain I and the occlusion baseline (spec 'Component 3': masking token i leaves
positions < i unchanged, so the key/value cache of the unmasked prefix is computed once and each
chunk of masked copies recomputes only positions >= its first masked position: about n^2/2
token-positions instead of n^2, batched by a memory budget (at most `mask_batch` copies per pass),
SDPA kernels, no attentions, last-position logits only).
"""
from __future__ import annotations

import torch

from ..control import NO_CONTROL, JobControl
from ..errors import InputError
from ..models.footprint import activation_bytes, items_that_fit, kv_bytes
from ..models.loader import LoadedModel, attention_implementation


def mask_vector(lm: LoadedModel, X: torch.Tensor, scheme: str) -> torch.Tensor | None:
    """The embedding that replaces a masked token (None for 'delete')."""
    if scheme == "zero":
        return torch.zeros_like(X[0])
    if scheme == "mean":
        return X.mean(0)
    if scheme == "pad":
        tok = lm.tokenizer
        candidates = [getattr(tok, "pad_token_id", None), getattr(tok, "unk_token_id", None),
                      getattr(lm.model.config, "pad_token_id", None)]
        pad_id = next((c for c in candidates if isinstance(c, int)), None)
        if pad_id is None:
            raise InputError("This model has no pad or unk token; use mask 'zero', 'mean' or 'delete'.", "mask")
        return lm.model.get_input_embeddings().weight[pad_id].detach().to(X.dtype)
    if scheme == "delete":
        return None
    raise InputError(f"Unknown mask scheme {scheme!r}.", "mask")


@torch.no_grad()
def masked_last_logits(lm: LoadedModel, X: torch.Tensor, positions: list[int], mask: str, batch: int,
                       control: JobControl = NO_CONTROL, cache=None, input_ids: list[int] | None = None,
                       budget_bytes: int | None = None):
    """Yield (positions chunk, logits at the last position (B, vocab)) with each position in the
    chunk masked alone. Prefix-KV reuse, batching, SDPA: shared by I and the occlusion baseline.
    A chunk holds at most `batch` copies and, with `budget_bytes`, only as many as fit it: a chunk
    that starts at position s recomputes n - s positions per copy, so early chunks are small and
    late ones (short suffixes) large, and memory stays within the budget at any n."""
    model = lm.model
    n = X.shape[0]
    delete = mask == "delete"
    mask_vec = mask_vector(lm, X, mask)

    def size_at(start: int) -> int:
        return chunk_size(lm, n, start, batch, budget_bytes)

    with attention_implementation(model, "sdpa"):
        kv = _prefix_kv(lm, X, cache, input_ids)
        done = 0
        for chunk in _chunks(positions, size_at, n, delete):
            control.step("masking", done, len(positions))
            yield chunk, _masked_suffix_logits(model, X, kv, chunk, mask_vec)
            done += len(chunk)
        control.step("masking", len(positions), len(positions))
    del kv


def copy_bytes(lm: LoadedModel, suffix: int, prefix: int) -> int:
    """Memory of one masked copy in a `masked_last_logits` batch: the activations of the `suffix`
    positions it recomputes (no grad, SDPA, no attention probabilities: 0.08 of an eager forward's,
    fitted to peak RSS above the resident weights on SmolLM2, 8 copies: 60 / 273 MiB measured at
    n = 64 / 256, this gives 74 / 297) and its own copy of the key/value cache of all its positions."""
    return int(0.08 * activation_bytes(lm, suffix, with_grad=False)) + kv_bytes(lm, prefix + suffix)


def chunk_size(lm: LoadedModel, n: int, start: int, batch: int, budget_bytes: int | None) -> int:
    """Copies in the chunk whose first masked position is `start`: at most `batch`, and with a
    budget only as many as fit it (each recomputes n - start positions)."""
    if budget_bytes is None:
        return max(1, batch)
    return items_that_fit(batch, copy_bytes(lm, n - start, start), budget_bytes)


def chunk_sizes(lm: LoadedModel, n: int, batch: int, budget_bytes: int | None) -> dict[int, int]:
    """{first position: copies} of the chunks `masked_last_logits` runs when every position is masked."""
    sizes, start = {}, 0
    while start < n:
        sizes[start] = min(chunk_size(lm, n, start, batch, budget_bytes), n - start)
        start += sizes[start]
    return sizes


def masked_pass_bytes(lm: LoadedModel, n: int, batch: int, budget_bytes: int | None) -> int:
    """Peak memory of the masked passes: the unmasked prefix cache plus the largest chunk."""
    chunks = chunk_sizes(lm, n, batch, budget_bytes)
    return kv_bytes(lm, n) + max(b * copy_bytes(lm, n - s, s) for s, b in chunks.items())


def masked_copy_bytes(lm: LoadedModel, n: int) -> int:
    """The largest masked copy of an n-token context (the one masked at position 0)."""
    return copy_bytes(lm, n, 0)


def _prefix_kv(lm: LoadedModel, X: torch.Tensor, cache, input_ids: list[int] | None) -> list:
    """Key/value cache of the unmasked context, reusing a cached prefix when there is one."""
    from transformers import DynamicCache

    from ..cache import KV_BLOCK, ModelIdentity, kv_to_device
    from ..models.kv_cache import returned_cache, with_cache

    model = lm.model
    use_disk = cache is not None and input_ids is not None
    dtype = str(X.dtype)
    identity = ModelIdentity.of(lm)
    hit = cache.get_kv_prefix(identity, list(input_ids), dtype) if use_disk else None
    if hit is not None and hit[0] < X.shape[0]:
        L, kv = hit
        past = DynamicCache(ddp_cache_data=kv_to_device(kv, X.device, X.dtype))
        pos = torch.arange(L, X.shape[0], device=X.device)[None]
        out = model(inputs_embeds=X[None, L:], **with_cache(model, past), position_ids=pos, use_cache=True,
                    logits_to_keep=1)
    else:
        # A config-less DynamicCache keeps every key: the model's own cache would keep only the last
        # window-1 keys on sliding-window layers (Mistral, Gemma-2, Phi-3), and the suffix passes
        # below slice the prefix [:start] out of it.
        out = model(inputs_embeds=X[None], **with_cache(model, DynamicCache()), use_cache=True, logits_to_keep=1)
    kv = [(layer[0], layer[1]) for layer in returned_cache(out)]
    if use_disk and (hit is None or hit[0] < (X.shape[0] // KV_BLOCK) * KV_BLOCK):
        cache.set_kv_prefix(identity, list(input_ids), dtype, kv)
    return kv


def _chunks(positions: list[int], size_at, n: int, delete: bool):
    """Consecutive masked positions, `size_at(first position)` at a time. Deleting the last token
    leaves no suffix to recompute, so it gets a chunk of its own."""
    pending: list[int] = []
    for i in positions:
        if delete and i == n - 1:
            continue
        pending.append(i)
        if len(pending) >= size_at(pending[0]):
            yield pending
            pending = []
    if pending:
        yield pending
    if delete and (n - 1) in positions:
        yield [n - 1]


def _masked_suffix_logits(model, X: torch.Tensor, kv, chunk: list[int], mask_vec: torch.Tensor | None) -> torch.Tensor:
    """Logits at the last position for each masked copy in `chunk`, reusing the cached prefix."""
    from transformers import DynamicCache

    from ..models.kv_cache import with_cache

    n, d = X.shape
    start, B = chunk[0], len(chunk)
    if mask_vec is None:  # delete: drop row i; later tokens move one position left
        keep = [torch.cat([X[start:i], X[i + 1:]]) for i in chunk]
        suffix = torch.stack(keep)
        if suffix.shape[1] == 0:  # deleted the last token: the prediction is read at position n-2
            return model(inputs_embeds=X[None, : n - 1], use_cache=False, logits_to_keep=1).logits[:, -1]
    else:
        suffix = X[start:].unsqueeze(0).repeat(B, 1, 1)
        suffix[torch.arange(B), torch.tensor(chunk) - start] = mask_vec
    L = suffix.shape[1]
    position_ids = torch.arange(start, start + L, device=X.device).unsqueeze(0).expand(B, L)
    cache = None
    if start > 0:
        cache = DynamicCache(ddp_cache_data=[(k[:, :, :start].expand(B, -1, -1, -1).contiguous(),
                                              v[:, :, :start].expand(B, -1, -1, -1).contiguous()) for k, v in kv])
    out = model(inputs_embeds=suffix, **with_cache(model, cache), position_ids=position_ids,
                use_cache=cache is not None, logits_to_keep=1)
    return out.logits[:, -1]
