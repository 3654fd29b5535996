"""Persistent caches (diskcache: bounded, LRU-evicted, safe across processes).

Three kinds of entries, all keyed with the model's revision so a new model never reads an old
model's entries:
- tokenization and greedy generations (`encode`, `generate`): several targets of one prompt,
  or a page reload, skip re-tokenizing and re-generating;
- key/value prefixes: the prefix cache of a context, reused for any later context that starts
  with the same ids (another target of the prompt, a shared system prompt), in blocks of
  `KV_BLOCK` tokens;
- finished explanations keyed by (model, quantization, dtype, method, settings, ids, target).
A corrupt or unreadable entry is dropped and recomputed, never fatal.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

import torch

log = logging.getLogger(__name__)

KV_BLOCK = 32
DEFAULT_SIZE_LIMIT = 2 * 2**30


def _digest(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


class HetaCache:
    """One diskcache.Cache folder; `None`-safe helpers so callers can pass `cache=None`."""

    def __init__(self, folder: str | Path | None = None, size_limit: int = DEFAULT_SIZE_LIMIT):
        import diskcache

        from .models.registry import cache_home

        self.folder = Path(folder or os.environ.get("HETA_LITE_CACHE") or cache_home() / "cache")
        self.folder.mkdir(parents=True, exist_ok=True)
        self._cache = diskcache.Cache(str(self.folder), size_limit=int(size_limit), eviction_policy="least-recently-used")
        self.hits = 0
        self.misses = 0

    # -- generic ---------------------------------------------------------------------------
    def get(self, kind: str, *key: Any) -> Any | None:
        k = f"{kind}:{_digest(*key)}"
        try:
            value = self._cache.get(k, default=None, retry=True)
        except Exception as err:  # noqa: BLE001 - unpickling garbage, sqlite hiccups: recompute
            log.warning("dropping unreadable %s cache entry (%s)", kind, type(err).__name__)
            self._drop(k)
            value = None
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def set(self, kind: str, value: Any, *key: Any) -> None:
        try:
            self._cache.set(f"{kind}:{_digest(*key)}", value, retry=True)
        except Exception as err:  # noqa: BLE001 - a full disk must not fail the explanation
            log.warning("could not write %s cache entry (%s)", kind, type(err).__name__)

    def get_or_compute(self, kind: str, key: tuple, compute: Callable[[], Any]) -> Any:
        value = self.get(kind, *key)
        if value is None:
            value = compute()
            self.set(kind, value, *key)
        return value

    def _drop(self, k: str) -> None:
        try:
            self._cache.delete(k, retry=True)
        except Exception:  # noqa: BLE001
            pass

    def clear(self) -> None:
        self._cache.clear(retry=True)

    def volume(self) -> int:
        return int(self._cache.volume())

    def close(self) -> None:
        self._cache.close()

    # -- key/value prefixes ----------------------------------------------------------------
    # One entry holds the largest block-aligned prefix of a context; small index entries map
    # every shorter aligned prefix to it, so a lookup slices instead of storing copies.
    def get_kv_prefix(self, revision: str, dtype: str, ids: list[int]) -> tuple[int, list] | None:
        """Longest cached block-aligned prefix of `ids`: (length, [(k, v) per layer] on CPU)."""
        for L in range((len(ids) // KV_BLOCK) * KV_BLOCK, 0, -KV_BLOCK):
            entry_key = self.get("kvidx", revision, dtype, ids[:L])
            if entry_key is None:
                continue
            kv = self.get("kv", entry_key)
            if kv is not None and kv[0][0].shape[-2] >= L:
                return L, [(k[..., :L, :], v[..., :L, :]) for k, v in kv]
        return None

    def set_kv_prefix(self, revision: str, dtype: str, ids: list[int], kv: list) -> None:
        L = (len(ids) // KV_BLOCK) * KV_BLOCK
        if L == 0:
            return
        entry_key = _digest(revision, dtype, ids[:L])
        self.set("kv", [(k[..., :L, :].detach().cpu().clone(), v[..., :L, :].detach().cpu().clone()) for k, v in kv],
                 entry_key)
        for j in range(L, 0, -KV_BLOCK):
            self.set("kvidx", entry_key, revision, dtype, ids[:j])


def kv_to_device(kv: list, device, dtype: torch.dtype) -> list:
    return [(k.to(device=device, dtype=dtype), v.to(device=device, dtype=dtype)) for k, v in kv]
