"""Rank agreement of two attributions (heta_lite.agreement): Spearman, Kendall tau-b, top-k overlap,
checked by hand on small rankings, ties included."""
from __future__ import annotations

import numpy as np
import pytest

from heta_lite.agreement import agreement, top_k_overlap


def test_agreement_on_hand_checked_rankings():
    a = [4.0, 3.0, 2.0, 1.0]
    same = agreement(a, a)
    assert (same.spearman, same.kendall, same.top5) == pytest.approx((1.0, 1.0, 1.0))
    rev = agreement(a, a[::-1])
    assert (rev.spearman, rev.kendall) == pytest.approx((-1.0, -1.0))
    # one adjacent swap among 4: Spearman 1 - 6*2/(4*15) = 0.8; Kendall (5 - 1)/6
    one = agreement(a, [4.0, 3.0, 1.0, 2.0])
    assert one.spearman == pytest.approx(0.8) and one.kendall == pytest.approx(4 / 6)
    # only scored positions count: the unscored 0s would otherwise look like agreement
    masked = agreement([0, 3, 2, 1, 0], [0, 1, 2, 3, 0], scored=[False, True, True, True, False])
    assert masked.n == 3 and masked.spearman == pytest.approx(-1.0)
    assert top_k_overlap([9, 8, 7, 1, 0, 0], [9, 1, 0, 8, 7, 0], 3) == pytest.approx(1 / 3)
    assert np.isnan(agreement([1, 1, 1], [1, 2, 3]).spearman)  # a constant ranking has no order
    # ties: a's ranks are 1, 2.5, 2.5, 4; Spearman = Pearson of ranks = 4.5 / sqrt(4.5 * 5) = sqrt(0.9);
    # Kendall tau-b: 5 concordant pairs, 0 discordant, 1 pair tied in a only: 5 / sqrt(5 * 6)
    tied = agreement([1.0, 2.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0])
    assert tied.spearman == pytest.approx(np.sqrt(0.9)) and tied.kendall == pytest.approx(5 / np.sqrt(30))
    # top-k ties are broken by position: top-2 of [5, 5, 5, 0] is {0, 1}
    assert top_k_overlap([5.0, 5.0, 5.0, 0.0], [0.0, 5.0, 4.0, 3.0], 2) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="lengths"):
        agreement([1, 2], [1, 2, 3])
