"""The profiling tool runs end to end on a tiny model, and its stage breakdown is the engine's."""
from __future__ import annotations

import json

import torch

from heta_lite import HetaSettings
from heta_lite.models import wrap_model
from profiling.profile_explain import main, profile_explanation
from tests.core.test_frame import FAMILIES, TEXT, family_tokenizer
from tests.reference.tiny import TINY_BUILDERS


def test_profile_names_the_stages_and_the_operators():
    specials, bos, eos, adds_bos, *_ = FAMILIES["qwen2"]
    lm = wrap_model(TINY_BUILDERS["qwen2"](torch.float32), family_tokenizer(specials, bos, eos, adds_bos))
    prof = profile_explanation(lm, 6, HetaSettings.preset("balanced", num_probes=2), text=TEXT)
    assert {"gate", "curvature", "information", "attribution_total"} <= set(prof.stages_s)
    assert prof.n == 6 and prof.fwd_bwd_s > 0 and prof.total_s >= prof.stages_s["curvature"]
    assert prof.top_ops and all(o["self_s"] >= 0 and o["calls"] >= 1 for o in prof.top_ops)
    assert any("mm" in o["name"] for o in prof.top_ops)  # matrix products dominate any transformer
    md = prof.markdown()
    assert "| curvature |" in md and "x one forward+backward" in md
    assert json.loads(json.dumps(prof.to_dict()))["stages_s"] == prof.stages_s


def test_cli_refuses_a_context_longer_than_its_text(tmp_path):
    import pytest

    with pytest.raises(SystemExit, match="pick --n"):
        main(["--n", "100000", "--quality", "fast", "--out", str(tmp_path)])
