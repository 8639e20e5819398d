"""Confidence intervals for success rates measured over a handful of episodes."""

from __future__ import annotations

import math

#: two-sided 95 % normal quantile, Phi^-1(0.975)
Z_95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson 1927; Newcombe 1998, method 3).

    With p = k / n, the interval is the set of proportions a z-test would not reject:

        centre    = (p + z^2 / 2n) / (1 + z^2 / n)
        half-width = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)

    Unlike the normal (Wald) interval it stays inside [0, 1] and is not empty at 0 / n or n / n: 0 of 20 gives
    [0, z^2 / (n + z^2)] = [0, 16.1 %].

    Args:
        successes: k, successful episodes (0 <= k <= n).
        n: episodes (>= 1).
        z: normal quantile (default: 95 %, two-sided).

    Returns:
        (low, high) as fractions in [0, 1].

    Raises:
        ValueError: n < 1 or k outside 0..n.
    """
    if n < 1:
        raise ValueError(f"wilson_interval: n must be >= 1 episode, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"wilson_interval: successes must be in 0..{n}, got {successes}")
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n))
    # the exact bounds at k = 0 and k = n are 0 and 1; clamp the rounding error of the formula
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high
