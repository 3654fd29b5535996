"""The soak's "wrong token" probe must be wrong: CI once failed because `token[:-1] + "A"` was the
owner's own token for a token ending in "A" (1 in 64), and the "stranger" then read its own job."""
import secrets

from experiments.soak import near_miss


def test_near_miss_differs_from_every_token_by_one_character():
    tokens = [secrets.token_urlsafe(24) for _ in range(2000)] + ["abcA", "abcB", "A"]
    assert any(t.endswith("A") for t in tokens)  # the case that broke CI is in the sample
    for t in tokens:
        wrong = near_miss(t)
        assert wrong != t and len(wrong) == len(t) and wrong[:-1] == t[:-1]
