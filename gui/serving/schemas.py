"""Request bodies of the REST API (pydantic; every field bounded) and the input limits."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_BODY_BYTES = 64 * 1024
MAX_PROMPT_CHARS = 20_000


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    position: int | None = Field(None, ge=1, le=100_000, description="teacher-forced target position")
    generated: int | None = Field(None, ge=0, le=63, description="index of the generated token (0 = first)")
    max_new_tokens: int = Field(16, ge=1, le=64)
    chat: bool | None = None


class OptionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    estimator: Literal["block", "global"] | None = None
    num_probes: int | None = Field(None, ge=1, le=32)
    mask: Literal["zero", "mean", "pad", "delete"] | None = None
    beta: float | None = Field(None, ge=0, le=10)
    gamma: float | None = Field(None, ge=0, le=10)
    combination: Literal["normalised", "raw"] | None = None
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    max_tokens: int | None = Field(None, ge=1, le=1024)
    information: Literal["exact", "taylor"] | None = None
    time_budget_s: float | None = Field(None, gt=0, le=600)
    frame: Literal["auto", "none"] | None = Field(None, description="auto (default): frame tokens first; none: authors' setting")
    gate: Literal["full", "last-quarter", "norm-mixing"] | None = None
    check: bool | None = Field(None, description="run the faithfulness check (default true)")


class ExplainIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    prompt: str = Field(..., max_length=MAX_PROMPT_CHARS)
    target: TargetIn = Field(default_factory=TargetIn)
    method: str = Field("heta", max_length=64)
    quality: Literal["fast", "balanced", "accurate"] = "fast"
    options: OptionsIn = Field(default_factory=OptionsIn)
    run_async: bool = Field(False, alias="async", description="return a job id at once")
    model: str | None = Field(None, max_length=200, description="a loaded model (default: the primary)")
    quant: str | None = Field(None, max_length=32, description="its quantization mode (default: the primary's)")


class AdminModelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(..., min_length=1, max_length=200, description="short name, hub id or folder")
    quant: str = Field("none", max_length=32)
    primary: bool = Field(True, description="make it the model requests use by default")


class AdminUnloadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(..., min_length=1, max_length=200)
    quant: str = Field("none", max_length=32)
