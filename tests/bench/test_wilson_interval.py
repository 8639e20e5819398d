"""The 95 % Wilson score interval of the learning protocol's success rates (``protocols/stats.py``)."""

import math

import pytest
from lerobot_vla_tools.bench.stats import Z_95, wilson_interval

Z2 = Z_95**2  # 3.841459


def test_z_is_the_two_sided_95_percent_normal_quantile():
    assert 0.5 * math.erfc(-Z_95 / math.sqrt(2)) == pytest.approx(0.975, abs=1e-12)  # Phi(z) = 0.975


def test_half_of_twenty_episodes_worked_by_hand():
    # p = 0.5, z^2/n = 3.8415/20 = 0.19207: centre (0.5 + 0.09604) / 1.19207 = 0.5 exactly;
    # half-width 1.95996 / 1.19207 * sqrt(0.25/20 + 3.8415/1600) = 1.64416 * 0.122068 = 0.20070.
    low, high = wilson_interval(10, 20)
    assert low == pytest.approx(0.5 - 0.200700, abs=1e-5)
    assert high == pytest.approx(0.5 + 0.200700, abs=1e-5)


def test_no_success_in_twenty_has_an_upper_bound_of_z2_over_n_plus_z2():
    # at p = 0 the formula reduces to [0, z^2 / (n + z^2)] = 3.8415 / 23.8415 = 0.16112: "0 of 20" still allows 16 %
    assert wilson_interval(0, 20) == (0.0, pytest.approx(Z2 / (20 + Z2), abs=1e-12))
    assert wilson_interval(0, 20)[1] == pytest.approx(0.16112, abs=1e-5)


def test_all_successes_mirror_no_success():
    # k = n is the mirror image: [n / (n + z^2), 1] = 20 / 23.8415 = 0.83888
    assert wilson_interval(20, 20) == (pytest.approx(20 / (20 + Z2), abs=1e-12), 1.0)


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_matches_newcombes_published_examples(k, n, low, high):
    """Newcombe, "Two-sided confidence intervals for the single proportion", Stat. Med. 17 (1998), Table I,
    method 3 (score interval without continuity correction), four decimals."""
    got = wilson_interval(k, n)
    assert got == (pytest.approx(low, abs=5e-5), pytest.approx(high, abs=5e-5))


def test_the_old_two_episode_figure_is_compatible_with_almost_anything():
    # VITA-VLA's "50 %" was 1 of 2 episodes: its interval is [9.5 %, 90.5 %]
    low, high = wilson_interval(1, 2)
    assert (round(100 * low, 1), round(100 * high, 1)) == (9.5, 90.5)


def test_bad_counts_are_refused_with_the_field_named():
    with pytest.raises(ValueError, match="n must be >= 1"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="successes must be in 0..20"):
        wilson_interval(21, 20)
