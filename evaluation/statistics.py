"""Means over repeated runs with Student's t confidence intervals, and paired differences.

    mean_interval([10, 12, 14])          mean 12, sd 2, 95% half-width t(0.975, 2) * 2 / sqrt(3)
    paired_difference(full, multi_reg)   the same for full[i] - multi_reg[i], paired by index

The values are one number per seed (an ablation's action-wise MPJPE): the runs of one seed are
paired because they saw the same batches in the same order and started from the same random
draws, so their difference leaves out what the seed alone changes. Every result is a dict of
plain floats, ints, bools and None, ready for JSON. With a single value there is no spread to
estimate: sd, the half-width and the interval's ends are None, and so is `excludes_zero`.
"""
import math

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def _as_values(values, name="values"):
    """values as a 1-D float64 array of at least one finite number; ValueError otherwise."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name}: need a non-empty list of numbers, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: every value must be finite, got {array.tolist()}")
    return array


def t_quantile(count, confidence=CONFIDENCE):
    """Student's t quantile of a two-sided `confidence` interval of a mean of `count` values
    (count - 1 degrees of freedom): 4.30 for three values at 95%."""
    if count < 2:
        raise ValueError(f"a t interval needs at least 2 values, got {count}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    return float(stats.t.ppf(0.5 + confidence / 2, count - 1))


def mean_interval(values, confidence=CONFIDENCE):
    """{"count", "mean", "sd" (sample standard deviation, n - 1), "half_width", "low", "high",
    "confidence", "values"} of a list of numbers; sd, half_width, low and high are None for a
    single value."""
    array = _as_values(values)
    count, mean = int(array.size), float(array.mean())
    summary = {"count": count, "mean": mean, "sd": None, "half_width": None, "low": None,
               "high": None, "confidence": confidence, "values": array.tolist()}
    if count >= 2:
        sd = float(array.std(ddof=1))
        half_width = t_quantile(count, confidence) * sd / math.sqrt(count)
        summary.update(sd=sd, half_width=half_width, low=mean - half_width,
                       high=mean + half_width)
    return summary


def excludes_zero(summary):
    """Whether a mean_interval's interval lies wholly above or below zero; None without one."""
    if summary["low"] is None:
        return None
    return bool(summary["low"] > 0 or summary["high"] < 0)


def paired_difference(first, second, confidence=CONFIDENCE):
    """mean_interval of first[i] - second[i] (paired by index: by seed), with "excludes_zero":
    whether the interval leaves zero out, i.e. the difference is significant at that level
    (None for a single pair)."""
    first, second = _as_values(first, "first"), _as_values(second, "second")
    if first.shape != second.shape:
        raise ValueError(f"paired values need equal counts, got {first.size} and {second.size}")
    summary = mean_interval(first - second, confidence)
    summary["excludes_zero"] = excludes_zero(summary)
    return summary
