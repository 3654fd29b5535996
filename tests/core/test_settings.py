import pytest

from heta_lite.errors import InputError
from heta_lite.methods.heta.presets import PRESETS
from heta_lite.settings import HetaSettings


def test_accurate_is_the_papers_setting():
    s = HetaSettings.preset("accurate")
    assert (s.estimator, s.num_probes) == ("block", 10)


def test_fast_uses_global_estimator_and_overrides_apply():
    s = HetaSettings.preset("fast", seed=7, num_probes=2)
    assert s.estimator == "global" and s.seed == 7 and s.num_probes == 2 and s.quality == "fast"


@pytest.mark.parametrize("bad", [dict(estimator="x"), dict(mask="blur"), dict(num_probes=0), dict(beta=0, gamma=0),
                                 dict(max_tokens=0), dict(combination="sum")])
def test_bad_settings_are_refused(bad):
    with pytest.raises(InputError):
        HetaSettings(**bad)


def test_unknown_quality():
    with pytest.raises(InputError, match="quality"):
        HetaSettings.preset("turbo")


def test_every_preset_records_all_knobs():
    for q in PRESETS:
        d = HetaSettings.preset(q).to_dict()
        assert {"estimator", "num_probes", "mask", "beta", "gamma", "seed", "max_tokens", "combination"} <= set(d)
