"""Load a causal LM once, for many explanations.

One code path for every source: the offline GGUF is converted to a folder first, and hub
ids and folders both go through `from_pretrained`. The model is loaded with eager
attention because the gate needs attention probabilities and the curvature needs second
derivatives (SDPA on CPU has neither); passes that need neither switch to SDPA with
`attention_implementation(...)`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from ..errors import ModelUnavailableError, UnsupportedModelError
from .arch import ARCHITECTURES, ArchSpec, HeadDims, arch_for, head_dims
from .gguf_convert import converted_folder
from ..quantization.modes import QuantMode
from .catalogue import ModelSource, resolve_model_name

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A model ready to explain: weights, tokenizer, and what the gate needs to know."""

    model: Any
    tokenizer: Any
    name: str
    source: str  # hub id or folder the weights came from
    revision: str  # commit hash or folder path: part of every cache key
    arch: ArchSpec
    dims: HeadDims
    quantization: str = "none"
    load_seconds: float = 0.0
    chat_template: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.get_input_embeddings().weight.dtype

    def describe(self) -> dict[str, Any]:
        return {
            "name": public_name(self.name),
            "source": public_name(self.source),
            "revision": public_revision(self.revision),
            "architecture": self.arch.name,
            "dtype": str(self.dtype).replace("torch.", ""),
            "quantization": self.quantization,
            "device": str(self.device),
            "num_parameters": int(sum(p.numel() for p in self.model.parameters())),
            "num_layers": len(self.arch.blocks(self.model)),
            "num_heads": self.dims.num_heads,
            "num_kv_heads": self.dims.num_kv_heads,
            **({"quant": QuantMode.parse(self.quantization).describe()} if self.quantization != "none" else {}),
        }


def public_name(name_or_path: str) -> str:
    """What reports and the API show for a model: a hub id or short name as it is, a local folder
    by its last component only. Absolute server paths (the home directory, a user name, the model
    cache) never leave the server in a report or a model listing (issue #18)."""
    looks_like_path = name_or_path.startswith(("/", "~", ".")) or "\\" in name_or_path or name_or_path.count("/") > 1
    if not looks_like_path:
        return name_or_path
    return "local:" + (re.split(r"[\\/]", name_or_path.rstrip("/\\"))[-1] or "model")


def public_revision(revision: str | None) -> str | None:
    """A local folder's revision is 'local:<path>@<mtime>' (the cache keys need the path); reports
    show 'local:<folder name>@<mtime>'."""
    if not revision or not revision.startswith("local:") or "@" not in revision:
        return revision
    path, _, stamp = revision[len("local:"):].rpartition("@")
    return f"{public_name(path)}@{stamp}"


def wrap_model(model, tokenizer=None, name: str = "in-process", source: str = "in-process",
               revision: str = "in-process", quantization: str = "none") -> LoadedModel:
    """Wrap an already-built model (tests, notebooks) without going through a loader."""
    arch = arch_for(model)
    model.eval()
    model.requires_grad_(False)  # gradients are taken w.r.t. the input embeddings only
    return LoadedModel(
        model=model, tokenizer=tokenizer, name=name, source=source, revision=revision, arch=arch,
        dims=head_dims(model.config), quantization=quantization,
        chat_template=bool(tokenizer is not None and getattr(tokenizer, "chat_template", None)),
    )


def _default_dtype(device: str) -> torch.dtype:
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def load_model(name: str | None = "auto", *, device: str | None = None, dtype: torch.dtype | None = None,
               quantization: str = "none") -> LoadedModel:
    """Load by short name, hub id or folder, optionally quantized (`heta_lite.quantization.modes.QuantMode` names:
    none, 8bit, 4bit-nf4, 4bit-fp4, 4bit-nf4-dq, ...). Failures are one actionable sentence."""
    mode = QuantMode.parse(quantization)
    source = resolve_model_name(name)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or _default_dtype(device)  # also the 4-bit compute dtype
    t0 = time.perf_counter()
    location, revision = _materialise(source)
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": "eager"}
    if mode.quantized:
        _require_bitsandbytes(mode)
        kwargs["quantization_config"] = mode.bnb_config(compute_dtype=dtype)
        kwargs["device_map"] = {"": device}
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(location)
    except (OSError, ValueError) as err:
        raise _unavailable(source, err) from None
    if getattr(config, "model_type", None) not in ARCHITECTURES:  # before loading gigabytes of weights
        raise UnsupportedModelError(
            f"'{source.name}' is a '{getattr(config, 'model_type', '?')}' model, which HETA Lite does not support "
            f"(supported: {', '.join(sorted(ARCHITECTURES))}); pick a decoder-only model of these families.")
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModelForCausalLM.from_pretrained(location, **kwargs)
    except (OSError, ValueError, KeyError) as err:
        raise _unavailable(source, err) from None
    if not mode.quantized:
        model.to(device)
    else:
        from ..quantization.layers import disable_cpu_repacking

        disable_cpu_repacking(model)  # bitsandbytes' CPU 4-bit repack breaks its gradients (quantization/layers.py)
    lm = wrap_model(model, tokenizer, name=source.name, source=location, revision=revision, quantization=mode.name)
    lm.load_seconds = time.perf_counter() - t0
    log.info("loaded %s (%s, %s) in %.1f s", source.name, lm.dtype, device, lm.load_seconds)
    return lm


def _require_bitsandbytes(mode: QuantMode) -> None:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ModelUnavailableError(f"Quantization '{mode.name}' needs bitsandbytes: pip install -e '.[quant]'.") from None
    logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)  # one warning per int8 matmul


def _materialise(source: ModelSource) -> tuple[str, str]:
    """(folder or hub id to pass to from_pretrained, revision string for cache keys)."""
    if source.kind == "gguf-package":
        folder = converted_folder(source)
        return str(folder), f"{source.gguf_file}@{_mtime(folder / 'config.json')}"
    if source.kind == "local":
        return source.location, f"local:{source.location}@{_mtime(Path(source.location) / 'config.json')}"
    if _hub_revision(source.location) == "main" and not _hub_reachable():
        raise _unavailable(source, OSError("hub unreachable"))
    return source.location, _hub_revision(source.location)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Fail in seconds, not after the hub client's ~30 s of retries, when there is no network."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _mtime(path: Path) -> int:
    try:
        return int(path.stat().st_mtime)
    except OSError:
        return 0


def _hub_revision(repo_id: str) -> str:
    """The cached snapshot's commit hash when known (no network call), else 'main'."""
    try:
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(repo_id, "config.json")
        if isinstance(path, str):
            return Path(path).parent.name
    except Exception:  # noqa: BLE001 - a missing revision only weakens cache keys
        pass
    return "main"


def _unavailable(source: ModelSource, err: Exception) -> ModelUnavailableError:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    if "model type" in text.lower() or "unrecognized" in text.lower():
        return UnsupportedModelError(
            f"'{source.name}' is not a causal LM that transformers knows ({text}); pick another model."
        )
    if source.kind == "hub":
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        return ModelUnavailableError(
            f"Model '{source.location}' is not in the local Hugging Face cache and "
            f"{'offline mode is on' if offline else 'the hub could not be reached'}; download it where there is "
            f"network (`hf download {source.location}`) or use the offline model with --model smollm2-135m."
        )
    return ModelUnavailableError(f"Could not load '{source.name}': {text}.")


@contextlib.contextmanager
def attention_implementation(model, impl: str) -> Iterator[None]:
    """Temporarily switch attention kernels (e.g. SDPA for passes that need no attentions).

    SDPA is only a speed-up, so a model that can't switch to it keeps its current kernels
    (eager) for the pass: transformers refuses SDPA for Gemma-2 (SDPA can't apply its
    attention-logit soft-capping), and the same holds for any model whose
    `set_attn_implementation("sdpa")` raises. Other switches (to eager, for attentions) must work.
    """
    old = model.config._attn_implementation
    if old == impl:
        yield
        return
    try:
        model.set_attn_implementation(impl)
        switched = True
    except Exception as err:  # noqa: BLE001 - transformers raises ValueError, remote code may raise anything
        if impl != "sdpa":
            raise
        switched = False
        if model.config._attn_implementation != old:  # never leave a half-switched model behind
            model.set_attn_implementation(old)
        log.debug("%s stays on %s attention: %s", type(model).__name__, old,
                  str(err).splitlines()[0] if str(err) else type(err).__name__)
    if not switched:
        yield
        return
    try:
        yield
    finally:
        model.set_attn_implementation(old)
