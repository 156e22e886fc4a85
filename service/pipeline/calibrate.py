"""From label log-likelihoods to calibrated label probabilities.

A small teacher prefers some labels whatever the input (the label's own frequency, its position in the
prompt, the few-shot examples). Calibration divides that prior out. Batch calibration estimates the prior
as the mean predicted distribution over a batch of real items; the content-free variant estimates it from
placeholder inputs such as "N/A". On SMS Spam batch calibration did better (see bench/results/teacher*.json).
"""

from __future__ import annotations

import numpy as np

from service.ports import FloatArray

CONTENT_FREE_TEXTS: tuple[str, ...] = ("N/A", "", "[MASK]")
"""Placeholder inputs whose predictions estimate the content-free prior."""


def normalize(logliks: FloatArray) -> FloatArray:
    """Softmax over labels, per row: an (n, k) array of probabilities from (n, k) log-likelihoods.

    Rows of all -inf are returned as uniform rather than NaN.
    """
    logliks = np.atleast_2d(np.asarray(logliks, dtype=np.float64))
    top = np.max(logliks, axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    weights = np.exp(logliks - top)
    totals = weights.sum(axis=1, keepdims=True)
    uniform = np.full_like(weights, 1.0 / weights.shape[1])
    probs: FloatArray = np.where(totals > 0, weights / np.where(totals > 0, totals, 1.0), uniform)
    return probs


def batch_prior(probs: FloatArray) -> FloatArray:
    """The (k,) mean predicted distribution over the rows of an (n, k) array: the batch-calibration prior."""
    probs = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    if probs.shape[0] == 0:
        raise ValueError("a batch prior needs at least one item")
    prior: FloatArray = probs.mean(axis=0)
    return prior


def content_free_prior(content_free_logliks: FloatArray) -> FloatArray:
    """The (k,) mean distribution the teacher gives placeholder inputs (one row per CONTENT_FREE_TEXTS entry)."""
    return batch_prior(normalize(content_free_logliks))


def batch_calibrate(probs: FloatArray, prior: FloatArray) -> FloatArray:
    """An (n, k) array: each row of probs divided by the (k,) prior, then renormalised to sum to 1.

    A prior entry of 0 would divide by zero; priors are floored at 1e-12 so such a label keeps its
    (zero) probability instead of producing NaN.
    """
    probs = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    prior = np.asarray(prior, dtype=np.float64)
    if prior.shape != (probs.shape[1],):
        raise ValueError(f"prior has shape {prior.shape}, expected ({probs.shape[1]},)")
    adjusted = probs / np.maximum(prior, 1e-12)
    totals = adjusted.sum(axis=1, keepdims=True)
    calibrated: FloatArray = adjusted / np.where(totals > 0, totals, 1.0)
    return calibrated
