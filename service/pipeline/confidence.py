"""Calibration of teacher scores, fitted per task on human-reviewed items and refitted as reviews arrive.

The teacher gives a log-probability (or logit) per label. ``fit_temperature`` fits one temperature T so
that softmax(scores / T) has the least negative log-likelihood on reviewed labels (temperature scaling,
Guo et al. 2017): it changes confidences, never the top label. ``fit_calibration`` also fits a bias per
label, which corrects a small teacher's preference for some label strings and so may change the top label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

from service.ports import FloatArray

_LOG_T_BOUNDS = (np.log(0.02), np.log(50.0))
_BIAS_PRIOR = 2.0
"""L2 weight on the per-label biases against the summed NLL (a Gaussian prior with variance 1/4), so a
handful of reviews cannot push them far while hundreds can."""


def _scores(logits_or_logprobs: npt.ArrayLike) -> FloatArray:
    s = np.asarray(logits_or_logprobs, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValueError(f"scores must be (n, k) with k >= 2, got {s.shape}")
    # A label the teacher could not score (-inf) stays impossible but must not poison the arithmetic.
    finite_min = np.min(s[np.isfinite(s)]) if np.isfinite(s).any() else 0.0
    return np.where(np.isfinite(s), s, finite_min - 1e3)


def _labels(labels: npt.ArrayLike, n: int, k: int) -> npt.NDArray[np.int64]:
    y = np.asarray(labels, dtype=np.int64)
    if y.shape != (n,) or (n and (y.min() < 0 or y.max() >= k)):
        raise ValueError(f"labels must be (n,) column indices in [0, {k}), got shape {y.shape}")
    return y


def _nll(scores: FloatArray, labels: npt.NDArray[np.int64]) -> float:
    log_probs = scores - special.logsumexp(scores, axis=1, keepdims=True)
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def apply_temperature(*, logits_or_logprobs: npt.ArrayLike, temperature: float) -> FloatArray:
    """Calibrated probabilities softmax(scores / temperature): (n, k), rows summing to 1."""
    result: FloatArray = special.softmax(_scores(logits_or_logprobs) / temperature, axis=1)
    return result


def fit_temperature(*, logits_or_logprobs: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """The temperature in [0.02, 50] minimising the NLL of reviewed ``labels``; 1.0 with no reviews."""
    scores = _scores(logits_or_logprobs)
    y = _labels(labels, scores.shape[0], scores.shape[1])
    if y.size == 0:
        return 1.0
    result = optimize.minimize_scalar(
        lambda log_t: _nll(scores / np.exp(log_t), y), bounds=_LOG_T_BOUNDS, method="bounded"
    )
    return float(np.exp(result.x))


@dataclass(frozen=True)
class Calibration:
    """softmax(scores / temperature + bias): one temperature and a bias per label (first label's is 0)."""

    temperature: float = 1.0
    bias: tuple[float, ...] = ()
    fitted_on: int = 0

    def apply(self, logits_or_logprobs: npt.ArrayLike) -> FloatArray:
        """Calibrated probabilities: (n, k), rows summing to 1."""
        scores = _scores(logits_or_logprobs) / self.temperature
        if self.bias:
            scores = scores + np.asarray(self.bias)[None, :]
        result: FloatArray = special.softmax(scores, axis=1)
        return result


def fit_calibration(*, logits_or_logprobs: npt.ArrayLike, labels: npt.ArrayLike, fit_bias: bool = True) -> Calibration:
    """Fit a temperature and (when ``fit_bias`` and every label has been reviewed) a bias per label.

    The bias needs each label seen at least once; until then only the temperature is fitted.
    """
    scores = _scores(logits_or_logprobs)
    n, k = int(scores.shape[0]), int(scores.shape[1])
    y = _labels(labels, n, k)
    if n == 0:
        return Calibration()
    temperature = fit_temperature(logits_or_logprobs=scores, labels=y)
    if not fit_bias or np.unique(y).size < k:
        return Calibration(temperature=temperature, fitted_on=n)

    def loss(params: FloatArray) -> float:
        bias = np.concatenate([[0.0], params[1:]])
        return _nll(scores / np.exp(params[0]) + bias, y) + _BIAS_PRIOR / n * float(np.sum(params[1:] ** 2))

    start = np.concatenate([[np.log(temperature)], np.zeros(k - 1)])
    bounds = [_LOG_T_BOUNDS] + [(-20.0, 20.0)] * (k - 1)
    result = optimize.minimize(loss, start, method="L-BFGS-B", bounds=bounds)
    return Calibration(
        temperature=float(np.exp(result.x[0])),
        bias=(0.0, *(float(b) for b in result.x[1:])),
        fitted_on=n,
    )
