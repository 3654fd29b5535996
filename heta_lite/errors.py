"""Errors a user can act on. Each carries one sentence that says what to change.

Interfaces (CLI, GUI, API) catch `HetaError` and show `str(err)`; anything else is a bug.
"""
from __future__ import annotations


class HetaError(Exception):
    """Base class: a problem the user can fix, with a one-sentence message."""

    code = "heta_error"


class InputError(HetaError, ValueError):
    """Bad prompt, target or option (empty, too long, out of range)."""

    code = "bad_input"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class ModelUnavailableError(HetaError):
    """The model can't be had here (no network, not cached, unsupported architecture)."""

    code = "model_unavailable"


class UnsupportedModelError(ModelUnavailableError):
    """The model loads but its architecture is not in the architecture table."""

    code = "unsupported_model"


class ResourceLimitError(HetaError):
    """The job would not fit the memory budget (or ran out of memory)."""

    code = "resource_limit"


class JobCancelled(HetaError):
    """The job was cancelled by the user; partial work was dropped."""

    code = "cancelled"


class JobTimeout(HetaError):
    """The job ran past its time limit; partial work was dropped."""

    code = "timeout"
