from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * pct / 100.0
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarise(reps: Sequence[float]) -> dict[str, float]:
    """Median and spread (min/max) of several repetitions of one figure."""
    return {"median": statistics.median(reps), "min": min(reps), "max": max(reps), "n": len(reps)}
