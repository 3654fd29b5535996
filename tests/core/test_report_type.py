"""One result type (issue #15): `Report` builds, saves, loads and validates the v1 document that
every surface writes, and the association matrix is the engine's (the CLI only prints it)."""
from __future__ import annotations

import json

import pytest
import torch

from heta_lite import HetaSettings, TargetSpec
from heta_lite.engine import association_matrix, explain_context, make_context
from heta_lite.models import wrap_model
from heta_lite.report import Report, ReportError
from tests.core.test_frame import FAMILIES, TEXT, family_tokenizer
from tests.reference.tiny import TINY_BUILDERS

SETTINGS = HetaSettings.preset("fast", num_probes=1)


@pytest.fixture(scope="module")
def generated():
    specials, bos, eos, adds_bos, *_ = FAMILIES["qwen2"]
    lm = wrap_model(TINY_BUILDERS["qwen2"](torch.float32), family_tokenizer(specials, bos, eos, adds_bos))
    ctx = make_context(lm, TEXT, TargetSpec(generated=0, max_new_tokens=3, chat=False), SETTINGS)
    return lm, ctx, explain_context(lm, ctx, SETTINGS, "heta")


def test_save_load_round_trip_is_identical(generated, tmp_path):
    _, _, exp = generated
    rep = Report.from_explanation(exp)
    back = Report.load(rep.save(tmp_path / "r.json"))
    assert back.document == json.loads(rep.to_json())
    # the settings it ran with: the fast preset's information 'auto' resolved (a short context: exact)
    assert back.method == "heta" and back.settings == SETTINGS.replace(information="exact").to_dict()
    assert [t["rank"] for t in back.top(3)] == [1, 2, 3]
    assert back.scores() == pytest.approx([float(v) for v in exp.normalised])


def test_load_refuses_a_broken_report_and_names_where(generated, tmp_path):
    _, _, exp = generated
    doc = json.loads(Report.from_explanation(exp).to_json())
    doc["tokens"][2]["rank"] = "first"
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(ReportError, match="tokens/2/rank"):
        Report.load(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ReportError, match="not a readable JSON report"):
        Report.load(tmp_path / "junk.json")


def test_the_association_matrix_is_the_engines_and_matches_one_explanation_per_row(generated, tmp_path):
    lm, ctx, first = generated
    steps = []
    assoc = association_matrix(lm, first, "heta", progress=lambda done, total: steps.append((done, total)))
    gen = list(range(ctx.prompt_len, len(ctx.ids)))
    assert assoc["row_positions"] == gen and steps[-1] == (len(gen), len(gen))
    assert len(assoc["columns"]) == len(ctx.ids) - 1
    for row, t in zip(assoc["matrix"], gen):
        assert all(v is None for v in row[t:]) and all(v is not None for v in row[:t])
    last = explain_context(lm, ctx.with_target(gen[-1]), SETTINGS, "heta")  # an independent run of one row
    assert assoc["matrix"][-1][:gen[-1]] == pytest.approx([float(v) for v in last.normalised])
    rep = Report.load(Report.from_explanation(first, association=assoc).save(tmp_path / "a.json"))
    assert rep.association == assoc


def test_a_report_never_shows_the_server_path_of_a_local_model(generated):
    """Issue #18 item 9: a model loaded from a folder under the home directory put the absolute path
    into every report (and the API's model listing, which reads the same describe())."""
    lm, ctx, _ = generated
    from heta_lite.models import wrap_model

    path = "/home/alice/models/my-model"
    local = wrap_model(lm.model, lm.tokenizer, name=path, source=path, revision=f"local:{path}@1700000000")
    doc = Report.from_explanation(explain_context(local, ctx, SETTINGS, "heta")).to_json()
    assert "/home/alice" not in doc and "alice" not in doc
    model = json.loads(doc)["model"]
    assert model["name"] == "local:my-model" and model["revision"] == "local:my-model@1700000000"
