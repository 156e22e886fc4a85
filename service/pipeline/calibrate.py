"""From label log-likelihoods to calibrated label probabilities.

A small teacher prefers some labels whatever the input (the label's own frequency, its position in the
prompt, the few-shot examples). Calibration divides that prior out. Batch calibration estimates the prior
as the mean predicted distribution over a batch of real items; the content-free variant estimates it from
placeholder inputs such as "N/A"; `fitted_prior` fits it on items whose labels are known.
Measured on SMS Spam with SmolLM2-135M (bench/results/teacher_sms_spam.json, 100 items): zero-shot
macro-F1 0.35 raw, 0.41 batch, 0.43 content-free; with per-label kNN 4-shot prompts 0.89 raw, 0.77 batch
(it assumes balanced labels, and SMS is 13% spam) and 0.91 with the prior fitted on the labeled pool.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

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


def fitted_prior(raw_probs: FloatArray, gold: npt.ArrayLike, *, l2: float = 1e-2) -> FloatArray:
    """The (k,) prior that, divided out with batch_calibrate, best explains labeled items.

    raw_probs is (n, k) teacher probabilities of items whose true label index is gold (n,): typically
    reviewed items, scored before their review. The prior maximises the log-likelihood of gold under
    batch_calibrate(raw_probs, prior) (a per-label intercept, convex), with a small L2 pull towards a
    uniform prior so that a label never seen in gold keeps a finite prior.
    """
    logp = np.log(np.clip(np.atleast_2d(np.asarray(raw_probs, dtype=np.float64)), 1e-12, None))
    truth = np.asarray(gold, dtype=np.int64)
    n, k = logp.shape
    if truth.shape != (n,) or n == 0:
        raise ValueError(f"gold must be ({n},) with n > 0, got {truth.shape}")
    onehot = np.eye(k)[truth]

    def loss(shift: FloatArray) -> tuple[float, FloatArray]:
        logits = logp + shift
        logits -= logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(logits).sum(axis=1, keepdims=True))
        probs = np.exp(logits - log_norm)
        value = -float(np.sum(onehot * (logits - log_norm))) / n + l2 * float(shift @ shift)
        return value, (probs - onehot).sum(axis=0) / n + 2 * l2 * shift

    shift = minimize(loss, np.zeros(k), jac=True, method="L-BFGS-B").x
    prior: FloatArray = np.exp(-shift) / np.exp(-shift).sum()
    return prior
