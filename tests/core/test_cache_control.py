"""Caches return identical explanations and survive corruption; cancellation, time limits and
the memory estimate stop or refuse work with their messages."""
import gc

import numpy as np
import pytest

from heta_lite import HetaSettings, TargetSpec
from heta_lite.methods.heta.cost import estimate_memory, fit_memory
from heta_lite.methods.heta.curvature import probes_per_batch
from heta_lite.cache import HetaCache, ModelIdentity
from heta_lite.control import JobControl
from heta_lite.engine import explain
from heta_lite.errors import JobCancelled, JobTimeout, ResourceLimitError
from heta_lite.report import build_report

pytestmark = pytest.mark.slow
PROMPT = "Mary had a little lamb whose fleece was white as snow, and everywhere that Mary went the lamb was"
FAST = HetaSettings.preset("fast")


def test_report_cache_hit_equals_a_fresh_run_and_a_new_setting_misses(smollm, tmp_path):
    """The cached report equals one computed with no cache at all (not the stored object compared with
    itself), and a changed setting is recomputed."""
    cache = HetaCache(tmp_path)
    s = HetaSettings.preset("balanced")
    explain(smollm, PROMPT, TargetSpec(position=10, chat=False), s, cache=cache)
    hits = cache.hits
    b = explain(smollm, PROMPT, TargetSpec(position=10, chat=False), s, cache=cache)
    assert cache.hits > hits
    assert b.timings.get("cache_hit") == 1.0
    fresh = explain(smollm, PROMPT, TargetSpec(position=10, chat=False), s)
    rb, rf = build_report(b), build_report(fresh)
    for tb, tf in zip(rb["tokens"], rf["tokens"]):
        assert tb["id"] == tf["id"] and tb["rank"] == tf["rank"]
        assert tb["score"] == pytest.approx(tf["score"], rel=1e-6, abs=1e-12)
    assert rb["target"]["prob"] == pytest.approx(rf["target"]["prob"], rel=1e-9)
    changed = explain(smollm, PROMPT, TargetSpec(position=10, chat=False), s.replace(seed=5), cache=cache)
    assert "cache_hit" not in changed.timings


def test_kv_prefix_cache_gives_the_same_information_gain(smollm, tmp_path):
    cache = HetaCache(tmp_path)
    long_prompt = PROMPT + " " + PROMPT  # > 32 tokens: a block-aligned prefix gets stored
    s = HetaSettings.preset("balanced")
    first = explain(smollm, long_prompt, TargetSpec(position=36, chat=False), s, cache=cache)
    assert cache.get_kv_prefix(ModelIdentity.of(smollm), first.context.input_ids, "torch.float32") is not None
    # another target of the same prompt: reuses the 32-token prefix from disk
    with_cache = explain(smollm, long_prompt, TargetSpec(position=40, chat=False), s, cache=cache)
    without = explain(smollm, long_prompt, TargetSpec(position=40, chat=False), s)
    np.testing.assert_allclose(with_cache.result.components["I"].raw, without.result.components["I"].raw,
                               rtol=1e-4, atol=1e-7)


def test_corrupt_cache_entry_is_dropped_and_recomputed(smollm, tmp_path):
    cache = HetaCache(tmp_path)
    a = explain(smollm, PROMPT, TargetSpec(position=8, chat=False), FAST, cache=cache)
    # overwrite every stored value with bytes that don't unpickle
    import sqlite3

    con = sqlite3.connect(str(tmp_path / "cache.db"))
    con.execute("UPDATE Cache SET value = ?, mode = 4", (b"\x80\x04not a pickle",))  # mode 4 = pickled
    con.commit()
    con.close()
    b = explain(smollm, PROMPT, TargetSpec(position=8, chat=False), FAST, cache=cache)
    assert "cache_hit" not in b.timings
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)


def test_cancel_stops_between_passes_and_frees_memory(smollm):
    calls = []
    control = JobControl()

    def progress(stage, done, total):
        calls.append(stage)
        if stage == "curvature":
            control.cancel()

    control.progress = progress
    with pytest.raises(JobCancelled):
        explain(smollm, PROMPT, TargetSpec(position=12, chat=False), HetaSettings.preset("balanced"), control=control)
    assert "information" not in calls and "masking" not in calls  # stopped before the next stage
    gc.collect()
    from heta_lite.methods.heta.curvature import TargetGraph

    # the differentiable graph (the job's big allocation) is gone, even though the exception lives on
    assert not [o for o in gc.get_objects() if isinstance(o, TargetGraph)]


def test_time_limit(smollm):
    with pytest.raises(JobTimeout, match="time limit"):
        explain(smollm, PROMPT, TargetSpec(position=12, chat=False), HetaSettings.preset("accurate"),
                control=JobControl(time_limit_s=0.5))


def test_memory_estimate_refuses_an_oversized_job(smollm):
    s = HetaSettings.preset("accurate", batch_memory_mb=8192)  # several probes per pass at n = 512
    need = estimate_memory(smollm, 512, s)["peak"]
    with pytest.raises(ResourceLimitError, match="limit is 0.0 GiB"):
        fit_memory(smollm, 512, s, limit_bytes=10 * 2**20)
    floor = estimate_memory(smollm, 512, s.replace(batch_memory_mb=1))["peak"]  # one probe, one copy per pass
    assert floor < need
    shrunk = fit_memory(smollm, 512, s, limit_bytes=(floor + need) // 2)
    assert estimate_memory(smollm, 512, shrunk)["peak"] <= (floor + need) // 2
    assert probes_per_batch(smollm, 512, shrunk) < probes_per_batch(smollm, 512, s)  # smaller batches, not a refusal
    assert (shrunk.num_probes, shrunk.estimator) == (s.num_probes, s.estimator)  # results unchanged
    with pytest.raises(ResourceLimitError):
        explain(smollm, PROMPT, TargetSpec(position=12, chat=False), s, memory_limit_bytes=10 * 2**20)
