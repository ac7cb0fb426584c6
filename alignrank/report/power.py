"""How many seeds (or validation images) a design needs to detect a given difference.

* :func:`seeds_needed` - the paired t test over seeds: the smallest n >= 2 whose exact power (noncentral
  t with ``n - 1`` degrees of freedom and noncentrality ``delta / sd * sqrt(n)``) reaches the target at
  two-sided level alpha. The normal approximation :func:`n_normal`,
  ``n = ((z_{1-a/2} + z_{power}) * sd / delta)^2``, is its starting point and lower bound.
* :func:`images_needed` - the test set's own noise: if the standard error of the difference is
  ``se`` with ``n_images`` images and shrinks as ``1 / sqrt(images)``, the normal approximation
  ``n_images * ((z_{1-a/2} + z_{power}) * se / delta)^2``.

Examples:
    >>> seeds_needed(sd=2.0, delta=1.0, alpha=0.05, power=0.8)  # effect size 0.5: 34 pairs (G*Power's)
    34
    >>> round(n_normal(sd=2.0, delta=1.0, alpha=0.05, power=0.8), 2)
    31.4
    >>> images_needed(se=0.5, n_images=500, delta=1.0, alpha=0.05, power=0.8)
    982
"""

from __future__ import annotations

import math


def _z(alpha: float, power: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))


def n_normal(sd: float, delta: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Normal-approximation sample size ``((z_{1-a/2} + z_{power}) * sd / delta)^2`` (not rounded)."""
    return (_z(alpha, power) * sd / abs(delta)) ** 2


def t_power(n: int, sd: float, delta: float, alpha: float = 0.05) -> float:
    """Exact power of the two-sided one-sample (paired) t test with ``n`` pairs."""
    from scipy import stats

    df = n - 1
    nc = abs(delta) / sd * math.sqrt(n)
    tc = float(stats.t.ppf(1 - alpha / 2, df))
    return float(stats.nct.sf(tc, df, nc) + stats.nct.cdf(-tc, df, nc))


def seeds_needed(sd: float, delta: float, alpha: float = 0.05, power: float = 0.8, cap: int = 100_000) -> int | None:
    """Smallest number of seeds (pairs) whose paired t test detects ``delta`` with ``power`` at ``alpha``.

    Args:
        sd: Standard deviation of the per-seed paired difference.
        delta: Difference to detect (same unit as ``sd``).
        alpha: Two-sided level.
        power: Target power.
        cap: Largest n searched.

    Returns:
        n >= 2; 2 when ``sd`` is 0; None when ``sd`` is unknown (fewer than 2 seeds) or n would exceed ``cap``.
    """
    if sd is None or not math.isfinite(sd) or not delta:
        return None
    if sd == 0:
        return 2
    n = max(2, math.ceil(n_normal(sd, delta, alpha, power)))
    if n > cap:
        return None
    while n < cap and t_power(n, sd, delta, alpha) < power:  # the t test needs a little more than the normal
        n += 1
    while n > 2 and t_power(n - 1, sd, delta, alpha) >= power:
        n -= 1
    return n if n < cap else None


def images_needed(se: float, n_images: int, delta: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Validation images for the image noise alone to let ``delta`` be detected (normal approximation).

    Args:
        se: Standard error of the difference measured with ``n_images`` images (e.g. a per-image bootstrap).
        n_images: Images behind ``se``.
        delta: Difference to detect (same unit as ``se``).
        alpha: Two-sided level.
        power: Target power.

    Returns:
        ``ceil(n_images * ((z_{1-a/2} + z_{power}) * se / delta)^2)`` (at least 1); None when ``se`` is unknown.
    """
    if se is None or not math.isfinite(se) or not delta or n_images <= 0:
        return None
    return max(1, math.ceil(n_images * n_normal(se, delta, alpha, power)))
