"""The engine lets each method plan its own run (`AttributionMethod.plan`). A time budget re-plans
HETA with its presets and cost model; a baseline keeps the settings it was given (issue #15: the
engine used to run HETA's planner for every method, so occlusion with a time budget ran under a
HETA preset after an HVP calibration). Batches still shrink to a memory limit, results unchanged."""
from __future__ import annotations

import numpy as np
import pytest

from heta_lite.engine import explain_context, plan_settings
from heta_lite.errors import ResourceLimitError
from heta_lite.models import wrap_model
from heta_lite.settings import HetaSettings
from heta_lite.targets import Context
from heta_lite.tokens import TokenInfo
from tests.reference.tiny import tiny_qwen2

BASELINES = ("attention", "rollout", "saliency", "input_x_gradient", "integrated_gradients", "occlusion")
# Not any preset's fields (balanced is global/16): a re-plan with a preset is visible in every field.
GIVEN = HetaSettings(quality="balanced", estimator="block", num_probes=3, frame="none", check=False,
                     time_budget_s=600.0, extra={"ig_steps": 4})


@pytest.fixture(scope="module")
def lm():
    return wrap_model(tiny_qwen2())


def _ctx(n: int = 6) -> Context:
    toks = [TokenInfo(i, 5 + i, "t", "t", i, i + 1, False, "prompt") for i in range(n)]
    return Context("p", "t" * n, "position", False, [5 + i for i in range(n)], n - 1, toks, n)


@pytest.mark.parametrize("method", BASELINES)
def test_a_baseline_with_a_time_budget_is_not_replanned_with_heta_presets(lm, method):
    exp = explain_context(lm, _ctx(), GIVEN, method)
    # old engine: HetaSettings.preset('accurate', ...) (block, m = 10). `extra` keeps only the method's
    # own knobs (integrated gradients' ig_steps), so compare the rest field by field
    assert exp.settings.replace(extra=GIVEN.extra) == GIVEN
    assert exp.settings.extra == ({"ig_steps": 4} if method == "integrated_gradients" else {})
    assert not any("picked" in note for note in exp.notes)
    assert any(f"'{method}' has no cost model" in note for note in exp.notes)


def test_a_baseline_is_never_calibrated_with_hvps(lm, monkeypatch):
    import heta_lite.methods.heta.cost as cost

    def calibrate(*_a, **_k):
        raise AssertionError("a baseline was planned with HETA's HVP calibration")

    monkeypatch.setattr(cost, "calibrate", calibrate)
    for method in BASELINES:
        assert plan_settings(lm, _ctx(), GIVEN, method=method)[0] == GIVEN


def test_heta_with_a_time_budget_still_picks_a_preset(lm):
    settings, notes = plan_settings(lm, _ctx(), GIVEN, method="heta")
    assert settings.quality in ("fast", "balanced", "accurate") and settings != GIVEN
    assert settings.beta == GIVEN.beta and settings.time_budget_s == GIVEN.time_budget_s  # the user's knobs stay
    assert any(note.startswith("time budget: picked") or "nothing fits" in note for note in notes)


def test_a_time_budget_changes_only_the_preset_knobs(lm):
    """The budget picks estimator, probes and information; frame, gate, check, derivatives and a
    method's own knobs stay the user's (the planner used to drop them: '--gate last-quarter' with a
    budget silently ran the full gate)."""
    given = GIVEN.replace(gate="last-quarter", derivatives="dequantized", mask="mean", beta=0.3)
    settings, _ = plan_settings(lm, _ctx(), given, method="heta")
    for name in ("frame", "gate", "check", "derivatives", "extra", "mask", "beta", "gamma", "seed", "max_tokens"):
        assert getattr(settings, name) == getattr(given, name), name


def test_baseline_batches_shrink_to_the_memory_limit_with_the_same_scores(lm):
    from heta_lite.methods.base import fit_batch
    from heta_lite.methods.masking import masked_copy_bytes
    from heta_lite.models.footprint import activation_bytes

    plain = GIVEN.replace(time_budget_s=None)
    per_point = activation_bytes(lm, 5, with_grad=True)
    small, notes = plan_settings(lm, _ctx(), plain, memory_limit_bytes=3 * per_point, method="integrated_gradients")
    assert small.probe_batch == 2 and any("probe_batch shrunk to 2" in note for note in notes)
    full = explain_context(lm, _ctx(), plain, "integrated_gradients")
    shrunk = explain_context(lm, _ctx(), plain, "integrated_gradients", memory_limit_bytes=3 * per_point)
    assert shrunk.settings.probe_batch == 2
    # the same numbers up to float32 summation order (batched vs smaller backward passes)
    np.testing.assert_allclose(shrunk.scores, full.scores, rtol=1e-3, atol=1e-7)
    # occlusion's masked copies (SDPA, no grad) are far smaller than the one eager forward every
    # plan must fit: at that limit the copies a pass takes fit too
    limit = activation_bytes(lm, 5, False)
    occl, _ = plan_settings(lm, _ctx(), plain, memory_limit_bytes=limit, method="occlusion")
    assert occl.mask_batch * masked_copy_bytes(lm, 5) <= limit
    notes = []
    assert fit_batch(plain, "mask_batch", 100, 250, notes).mask_batch == 2 and notes == [
        "memory: mask_batch shrunk to 2 to fit the memory limit (results unchanged)"]
    # with a batch memory budget of two copies the cap is not what limits the pass: nothing shrinks
    assert fit_batch(plain, "mask_batch", 100, 250, [], budget_bytes=200).mask_batch == plain.mask_batch
    with pytest.raises(ResourceLimitError, match="'saliency' needs about"):
        plan_settings(lm, _ctx(), plain, memory_limit_bytes=1000, method="saliency")


def test_a_cancelled_time_estimate_stops_at_its_next_safe_point(lm):
    """The page's estimate job calibrates (a forward, a gradient, a batch of HVPs); a cancel is
    honoured between them, and a calibration that ran through gives the three cost units."""
    from heta_lite.control import JobControl
    from heta_lite.errors import JobCancelled
    from heta_lite.methods.heta import cost

    seen = []
    control = JobControl(progress=lambda stage, done, total: seen.append(stage))
    control.cancel()
    with pytest.raises(JobCancelled):
        cost.calibrate(lm, 300, control)  # a bucket no other test of this model measures
    seen.clear()
    cal = cost.calibrate(lm, 300, JobControl(progress=lambda stage, done, total: seen.append(stage)))
    assert seen == ["calibrating: forward", "calibrating: gradient", "calibrating: Hessian-vector products"]
    assert cal.forward_s > 0 and cal.graph_s > 0 and cal.hvp_s > 0
