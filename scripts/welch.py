#!/usr/bin/env python3
"""Welch's t-test between two cells given as mean, sample std and number of seeds.

    python3 scripts/welch.py 44.07 3.19 3  37 4 3
    -> t = 2.39, df = 3.81, two-sided p = 0.078

Used in the findings to say whether a gap to a published cell (mean ± std over its seeds)
is larger than the two cells' seed-to-seed spread. The paper does not say whether its ±
is a sample or population std; reading it as a sample std gives the smaller t. Pure
Python (no scipy): the t density is integrated numerically.
"""

import math
import sys


def t_density(t: float, df: float) -> float:
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    norm = math.exp(log_norm)
    return norm * (1 + t * t / df) ** (-(df + 1) / 2)


def two_sided_p(t: float, df: float) -> float:
    # P(|T| > t) = 1 - 2·∫_0^t density; midpoint rule on [0, t] is accurate to ~1e-9 here.
    steps = 200_000
    h = abs(t) / steps
    inner = sum(t_density((i + 0.5) * h, df) for i in range(steps)) * h
    return max(0.0, 1.0 - 2.0 * inner)


def welch(m1: float, s1: float, n1: float, m2: float, s2: float, n2: float):
    """(t, degrees of freedom, two-sided p) for two cells; needs n ≥ 2 and a std > 0."""
    a, b = s1 * s1 / n1, s2 * s2 / n2
    t = (m1 - m2) / math.sqrt(a + b)
    df = (a + b) ** 2 / (a * a / (n1 - 1) + b * b / (n2 - 1))
    return t, df, two_sided_p(t, df)


def main(argv: list[str]) -> int:
    if len(argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        m1, s1, n1, m2, s2, n2 = (float(a) for a in argv)
    except ValueError as err:
        print(f"welch.py: every argument must be a number: {err}", file=sys.stderr)
        return 2
    if n1 < 2 or n2 < 2:
        print("welch.py: each cell needs at least 2 seeds for a std", file=sys.stderr)
        return 2
    if s1 == 0 and s2 == 0:
        print("welch.py: both standard deviations are 0", file=sys.stderr)
        return 2
    t, df, p = welch(m1, s1, n1, m2, s2, n2)
    print(f"t = {t:.2f}, df = {df:.2f}, two-sided p = {p:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
