"""Small statistics: percentiles, medians and spreads, and a compact sketch of a distribution."""

from __future__ import annotations

import math
from collections.abc import Sequence

SKETCH_POINTS = 201


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` (0..100) of an already sorted sequence."""
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def sketch(ordered: Sequence[float], points: int = SKETCH_POINTS) -> list[float]:
    """Evenly spaced quantiles (0, 0.5, ..., 100 %): enough to draw a CDF, small enough for JSON."""
    if not ordered:
        return []
    return [percentile(ordered, 100 * i / (points - 1)) for i in range(points)]


def median(values: Sequence[float]) -> float:
    return percentile(sorted(values), 50)


def spread(values: Sequence[float]) -> float:
    """(max - min) / median: how far apart the repetitions landed (0.1 = 10 %)."""
    middle = median(values)
    if not values or not middle:
        return math.nan
    return (max(values) - min(values)) / abs(middle)
