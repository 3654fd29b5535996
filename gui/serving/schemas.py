"""Request bodies of the REST API (pydantic; every field bounded) and the input limits.

The explanation options are not written here: `OptionsIn` is generated from the knobs' one
declaration (heta_lite/options.py), like the CLI flags."""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from heta_lite.conversation import MAX_TURNS
from heta_lite.methods.registry import method_configs
from heta_lite.options import Option, options_of, value_type
from heta_lite.settings import QUALITIES, HetaSettings

MAX_BODY_BYTES = 64 * 1024
MAX_PROMPT_CHARS = 20_000
# POST /api/v1/explain/batch: items per batch, and the batch's totals (all prompts together)
MAX_BATCH_ITEMS = 16
MAX_BATCH_CHARS = 2 * MAX_PROMPT_CHARS  # characters of every prompt together
MAX_BATCH_TOKENS = 4096  # tokens of every prompt together (the model's tokenizer, no chat template)


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    position: int | None = Field(None, ge=1, le=100_000, description="teacher-forced target position")
    generated: int | None = Field(None, ge=0, le=63, description="index of the generated token (0 = first)")
    max_new_tokens: int = Field(16, ge=1, le=64)
    chat: bool | None = None


def _api_field(cls, f, opt: Option) -> tuple[Any, Any]:
    """(annotation, Field) of one declared knob for the public API: optional (None = the preset's or
    the declared default), its choices as a Literal, its bounds with the API's tighter cap."""
    kind = Literal[tuple(opt.choices)] if opt.choices is not None else value_type(cls, f.name)
    bounds: dict[str, Any] = {}
    if opt.low is not None:
        bounds["gt" if opt.low_open else "ge"] = opt.low
    high = opt.api_high if opt.api_high is not None else opt.high
    if high is not None:
        bounds["le"] = high
    return kind | None, Field(None, description=opt.help, **bounds)


def _options_model() -> type[BaseModel]:
    """OptionsIn, generated from the one declaration of every knob (heta_lite/options.py):
    HetaSettings' fields and each method's own config (e.g. integrated gradients' ig_steps)."""
    fields: dict[str, Any] = {}
    for cls in (HetaSettings, *method_configs().values()):
        for f, opt in options_of(cls):
            if opt.api:
                fields[f.name] = _api_field(cls, f, opt)
    return create_model("OptionsIn", __config__=ConfigDict(extra="forbid"), **fields)


OptionsIn = _options_model()


def settings_of(quality: str, options: BaseModel) -> HetaSettings:
    """The HetaSettings of an API request: the preset, the options it sets, each method's own knobs in
    `extra` (the engine keeps the chosen method's)."""
    given = options.model_dump(exclude_none=True)
    method_keys = {f.name for cfg in method_configs().values() for f in dataclasses.fields(cfg)}
    extra = {k: given.pop(k) for k in list(given) if k in method_keys}
    return HetaSettings.preset(quality, **given, extra=extra)


class _JobIn(BaseModel):
    """What /explain and /explain/batch share: how to explain, on which model, sync or async."""
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    method: str = Field("heta", max_length=64)
    quality: Literal[QUALITIES] = "fast"  # type: ignore[valid-type]
    options: OptionsIn = Field(default_factory=OptionsIn)
    run_async: bool = Field(False, alias="async", description="return a job id at once")
    model: str | None = Field(None, max_length=200, description="a loaded model (default: the primary)")
    quant: str | None = Field(None, max_length=32, description="its quantization mode (default: the primary's)")
    head_importance: bool = Field(False, description="also compute head importance for the target (the report's "
                                                     "`head_importance`: [layer][head] drops in log p)")


class TurnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: str = Field(..., max_length=MAX_PROMPT_CHARS)


class ExplainIn(_JobIn):
    """One explanation: of `prompt`, or of the model's answer to a `conversation` (turns user,
    assistant, ..., user; e.g. question, the model's answer, a correction): exactly one of them."""
    prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    conversation: list[TurnIn] | None = Field(None, min_length=1, max_length=MAX_TURNS,
                                              description="turns [{role, content}] ending with a user turn; the "
                                                          "report explains the model's answer to the last one")
    target: TargetIn = Field(default_factory=TargetIn)

    @model_validator(mode="after")
    def _one_source(self) -> "ExplainIn":
        if (self.prompt is None) == (self.conversation is None):
            raise ValueError("give either `prompt` or `conversation`, not both and not neither")
        return self

    @property
    def texts(self) -> tuple[str, ...]:
        """Every text of the request (kept out of the logs)."""
        return (self.prompt,) if self.prompt is not None else tuple(t.content for t in self.conversation or ())


class BatchItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(..., max_length=MAX_PROMPT_CHARS)
    target: TargetIn = Field(default_factory=TargetIn)


class ExplainBatchIn(_JobIn):
    """POST /api/v1/explain/batch: 1..MAX_BATCH_ITEMS items sharing method, quality, options, model.
    The totals (MAX_BATCH_CHARS, MAX_BATCH_TOKENS) are checked by the route (413 batch_too_large)."""
    items: list[BatchItemIn] = Field(..., min_length=1, max_length=MAX_BATCH_ITEMS)


class AdminModelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(..., min_length=1, max_length=200, description="short name, hub id or folder")
    quant: str = Field("none", max_length=32)
    primary: bool = Field(True, description="make it the model requests use by default")


class AdminUnloadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(..., min_length=1, max_length=200)
    quant: str = Field("none", max_length=32)
