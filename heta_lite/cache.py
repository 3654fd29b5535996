"""Persistent caches (diskcache: bounded, LRU-evicted, safe across processes).

Every key comes from ONE function, `cache_key(identity, kind, **inputs)`: the model's full
identity (`ModelIdentity`: name, revision, quantization mode, dtype, device type), the code's
fingerprint, the kind of entry and every input that determines the value. A cached value
can only be served to a computation that would have produced the same numbers: a 4-bit load
never reads the unquantized model's entries, a code change never reads old results.

Kinds of entries:
- tokenization and greedy generations (`encode`, `generate`): several targets of one prompt,
  or a page reload, skip re-tokenizing and re-generating;
- key/value prefixes: the prefix cache of a context, reused for any later context that starts
  with the same ids (another target of the prompt, a shared system prompt), in blocks of
  `KV_BLOCK` tokens;
- finished explanations (`report`): method, every setting (a method's own knobs included),
  ids, target.
A corrupt or unreadable entry is dropped and recomputed, never fatal.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch

log = logging.getLogger(__name__)

KV_BLOCK = 32
DEFAULT_SIZE_LIMIT = 2 * 2**30


@dataclass(frozen=True)
class ModelIdentity:
    """Everything about a loaded model that changes its numbers. Two loads of the same weights
    in different quantization modes, dtypes or device types are different models here."""

    name: str
    revision: str
    quantization: str
    dtype: str
    device_type: str

    @classmethod
    def of(cls, lm) -> "ModelIdentity":
        """The identity of a `LoadedModel`."""
        return cls(name=str(lm.name), revision=str(lm.revision), quantization=str(lm.quantization),
                   dtype=str(lm.dtype).replace("torch.", ""), device_type=str(lm.device.type))


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of the sources that compute numbers (this package, the quantized-layer code in
    heta_lite/quantization included): a code change never serves a value computed by old code."""
    root = Path(__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root.parent)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def cache_key(identity: ModelIdentity, kind: str, **inputs: Any) -> tuple:
    """THE key of every cache entry: (kind, model identity, code fingerprint, inputs by name).
    Callers pass every input that determines the value; nothing else is ever part of a key."""
    from . import __version__

    return (kind, asdict(identity), __version__, code_fingerprint(), sorted(inputs.items()))


def _digest(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


class HetaCache:
    """One diskcache.Cache folder; `None`-safe helpers so callers can pass `cache=None`."""

    def __init__(self, folder: str | Path | None = None, size_limit: int = DEFAULT_SIZE_LIMIT):
        import diskcache

        from .models.catalogue import cache_home

        self.folder = Path(folder or os.environ.get("HETA_LITE_CACHE") or cache_home() / "cache")
        self.folder.mkdir(parents=True, exist_ok=True)
        self._cache = diskcache.Cache(str(self.folder), size_limit=int(size_limit), eviction_policy="least-recently-used")
        self.hits = 0
        self.misses = 0

    # -- generic ---------------------------------------------------------------------------
    def get(self, key: tuple) -> Any | None:
        """The value stored under a `cache_key(...)` tuple, or None."""
        kind = key[0]
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

    def set(self, key: tuple, value: Any) -> None:
        kind = key[0]
        try:
            self._cache.set(f"{kind}:{_digest(*key)}", value, retry=True)
        except Exception as err:  # noqa: BLE001 - a full disk must not fail the explanation
            log.warning("could not write %s cache entry (%s)", kind, type(err).__name__)

    def get_or_compute(self, key: tuple, compute: Callable[[], Any]) -> Any:
        value = self.get(key)
        if value is None:
            value = compute()
            self.set(key, value)
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
    def get_kv_prefix(self, identity: ModelIdentity, ids: list[int], dtype: str) -> tuple[int, list] | None:
        """Longest cached block-aligned prefix of `ids` computed by this model in `dtype`:
        (length, [(k, v) per layer] on CPU)."""
        for L in range((len(ids) // KV_BLOCK) * KV_BLOCK, 0, -KV_BLOCK):
            entry = self.get(cache_key(identity, "kvidx", ids=ids[:L], dtype=dtype))
            if entry is None:
                continue
            kv = self.get(("kv", entry))
            if kv is not None and kv[0][0].shape[-2] >= L:
                return L, [(k[..., :L, :], v[..., :L, :]) for k, v in kv]
        return None

    def set_kv_prefix(self, identity: ModelIdentity, ids: list[int], dtype: str, kv: list) -> None:
        L = (len(ids) // KV_BLOCK) * KV_BLOCK
        if L == 0:
            return
        entry = _digest(*cache_key(identity, "kv", ids=ids[:L], dtype=dtype))
        self.set(("kv", entry), [(k[..., :L, :].detach().cpu().clone(), v[..., :L, :].detach().cpu().clone())
                                 for k, v in kv])
        for j in range(L, 0, -KV_BLOCK):
            self.set(cache_key(identity, "kvidx", ids=ids[:j], dtype=dtype), entry)


def kv_to_device(kv: list, device, dtype: torch.dtype) -> list:
    return [(k.to(device=device, dtype=dtype), v.to(device=device, dtype=dtype)) for k, v in kv]
