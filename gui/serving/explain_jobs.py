"""The API's explanation jobs: a request body validated cheaply (method, settings, prompt or
conversation, target; a batch's items and totals) before anything is queued, and the callable the
queue's worker runs. Routes (gui/serving/routes.py) only admit, queue and answer."""
from __future__ import annotations

import logging

from heta_lite.conversation import Conversation
from heta_lite.errors import HetaError, InputError, JobCancelled, JobTimeout

from ..state import AppState
from .errors import INTERNAL_MESSAGE, facts_of
from .schemas import MAX_BATCH_CHARS, MAX_BATCH_TOKENS, MAX_PROMPT_CHARS, ExplainBatchIn, ExplainIn, settings_of

log = logging.getLogger(__name__)


def _explain_job(state: AppState, body: ExplainIn):
    """Validate cheaply now (method, settings, target), then return the job callable."""
    from heta_lite.targets import check_prompt

    if body.conversation is not None:
        prompt = Conversation.of([t.model_dump() for t in body.conversation])
        check_prompt("".join(t.content for t in prompt.turns), max_chars=MAX_PROMPT_CHARS)  # all turns together
        if body.target.position is not None:
            raise InputError("A conversation is explained at the model's answer to its last turn: give "
                             "target.generated (or nothing), not target.position.", "target.position")
    else:
        prompt = check_prompt(body.prompt, max_chars=MAX_PROMPT_CHARS)
    settings = _settings_of(body)
    target = _target_spec(body.target)
    lm = state.get(body.model, body.quant)
    cache, method, heads = state.cache, body.method, body.head_importance

    def job(control):
        return _explain_one(lm, prompt, target, settings, method, control, cache, heads)

    return job


BATCH_KIND = "explain_batch"


class BatchTooLarge(InputError):
    """A batch over one of its totals (all prompts together: characters, tokens)."""

    code = "batch_too_large"
    http_status = 413
    public_code = "batch_too_large"


def _batch_job(state: AppState, body: ExplainBatchIn):
    """Validate the whole batch now (settings; each item's prompt and target, a bad one named by
    its index; the totals, tokens counted with the model's tokenizer), then return the job
    callable: the items in order, each its report or its error; cancelling stops them all."""
    from heta_lite.targets import check_prompt

    settings = _settings_of(body)
    targets = []
    for i, item in enumerate(body.items):
        try:
            check_prompt(item.prompt, max_chars=MAX_PROMPT_CHARS)
            targets.append(_target_spec(item.target))
        except InputError as err:
            where = f"items.{i}.{err.field}" if err.field else f"items.{i}"
            raise InputError(f"Item at index {i}: {err}", where) from None
    chars = sum(len(item.prompt) for item in body.items)
    if chars > MAX_BATCH_CHARS:
        raise BatchTooLarge(f"The batch's prompts have {chars:,} characters together; the limit is "
                            f"{MAX_BATCH_CHARS:,} (MAX_BATCH_CHARS): split it into smaller batches.", "items")
    lm = state.get(body.model, body.quant)
    tokens = sum(_token_count(lm, item.prompt) for item in body.items)
    if tokens > MAX_BATCH_TOKENS:
        raise BatchTooLarge(f"The batch's prompts have {tokens:,} tokens together; the limit is "
                            f"{MAX_BATCH_TOKENS:,} (MAX_BATCH_TOKENS): split it into smaller batches.", "items")
    work = [(item.prompt, t) for item, t in zip(body.items, targets)]
    cache, method, heads = state.cache, body.method, body.head_importance

    def job(control):
        n, out = len(work), []
        for i, (prompt, target) in enumerate(work):
            try:
                control.step(f"item {i + 1}/{n}", i, n)  # a cancel stops here, or inside the item
                report = _explain_one(lm, prompt, target, settings, method, _item_control(control, i, n), cache,
                                      heads)
                out.append({"index": i, "report": report})
            except JobCancelled:
                raise
            except JobTimeout as err:  # the batch's one time limit is spent: no later item can run
                out += [{"index": j, "error": _item_error(err)} for j in range(i, n)]
                break
            except HetaError as err:  # this item's problem (a target outside its text, ...): the others go on
                out.append({"index": i, "error": _item_error(err)})
            except Exception as err:  # noqa: BLE001 - a bug in one item must not lose the others
                log.exception("batch item %d of %d failed (%s)", i, n, type(err).__name__)
                out.append({"index": i, "error": {"code": "internal", "message": INTERNAL_MESSAGE}})
        n_ok = sum("report" in it for it in out)
        return {"items": out, "n_ok": n_ok, "n_failed": n - n_ok}

    return job


def _settings_of(body):
    from heta_lite.methods import get_method
    from heta_lite.methods.registry import configure

    get_method(body.method)
    return configure(body.method, settings_of(body.quality, body.options))  # bad knob: 400 before queueing


def _target_spec(t):
    from heta_lite.targets import TargetSpec

    return TargetSpec(position=t.position, generated=t.generated, max_new_tokens=t.max_new_tokens, chat=t.chat)


def _token_count(lm, prompt: str) -> int:
    """Tokens of `prompt` alone (no chat template, no special tokens): what a batch's total counts."""
    return len(lm.tokenizer(prompt, add_special_tokens=False)["input_ids"])


def _explain_one(lm, prompt, target, settings, method, control, cache, heads: bool) -> dict:
    """One explanation's v1 report; with `heads`, head importance for its target too (as the CLI's --heads)."""
    from heta_lite.engine import explain
    from heta_lite.report import Report

    exp = explain(lm, prompt, target, settings, method=method, control=control, cache=cache)
    importance = None
    if heads:
        from heta_lite.heads import head_importance

        ctx = exp.context
        importance = head_importance(lm, list(ctx.input_ids), ctx.target_id, control)
    return Report.from_explanation(exp, head_importance=importance).to_dict()


def _item_control(control, i: int, n: int):
    """The batch's control for item i: the same cancel and time limit, progress stages named
    "item i+1/n: <stage>" (what GET /jobs/{id} and its event stream show)."""
    from heta_lite.control import JobControl

    outer = control.progress

    def progress(stage: str, done: int, total: int) -> None:
        if outer is not None:
            outer(f"item {i + 1}/{n}: {stage}", done, total)

    return JobControl(progress=progress, time_limit_s=control.time_limit_s, cancel_event=control.cancel_event,
                      started=control.started)


def _item_error(err: HetaError) -> dict:
    """A failed item's error, as the API would answer it alone: its public code and message."""
    out = {"code": facts_of(err).code, "message": str(err)}
    if getattr(err, "field", None):
        out["field"] = err.field
    return out


def _api_viewable(job) -> bool:
    """API jobs, and the page's explanations (their Explanation serialises to the same report)."""
    return job.surface != "gui" or job.kind == "explain"


def _report_of(job) -> dict | None:
    """A finished job's report: an API job's dict as is, a page explanation built into one."""
    result = job.result
    if result is None or isinstance(result, dict):
        return result
    from heta_lite.report import Report

    return Report.from_explanation(result).to_dict()
