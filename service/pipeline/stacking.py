"""The labeler whose confidence is certified: the teacher, the embedding probe and (once one exists) the student,
stacked on uniform human reviews so that whichever of them knows the task carries the weight.

A stack is a weighted product of the sources' label distributions with a bias per label:
``softmax(sum_s w_s * log p_s + b)``. One source alone is temperature-and-bias calibration of that source; several
are logistic stacking over their log-probabilities (Wolpert 1992), with a handful of parameters, so a hundred
reviews fit it. ``fit_stack`` tries each source alone and all of them together and keeps the candidate with the
lowest cross-validated log-loss on the reviews: on SMS Spam the teacher carries weight, on a topic set the probe.

Inputs must be honest on the items the stack is fitted on: a source trained on those items (the probe) gives its
cross-fitted probabilities there (see ``cross_fitted``), or the stack learns to trust it more than it deserves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

from service.pipeline.kinds import probe_fitter
from service.pipeline.probe import AnyProbe, ProbeInput
from service.ports import FloatArray, TaskKind

IntArray = npt.NDArray[np.int64]

SOURCES: tuple[str, ...] = ("teacher", "probe", "student")
"""The sources a stack may combine, in the order their weights are stored."""
FOLDS = 5
"""Cross-validation folds that choose among the candidate stacks."""
_WEIGHT_BOUNDS = (0.0, 20.0)
_BIAS_BOUNDS = (-20.0, 20.0)
_BIAS_PRIOR = 2.0
"""L2 weight on the biases against the summed NLL, as in calibration: a few reviews cannot push them far."""
_WEIGHT_PRIOR = 0.5
"""L2 pull of each weight towards 1 (the source taken at its word), against the summed NLL."""
_FLOOR = 1e-6
"""Probabilities are floored here before the log, so one source's zero cannot veto a label alone."""


@dataclass(frozen=True)
class Stack:
    """softmax(sum_s weight_s * log p_s + bias) over the task's labels."""

    sources: tuple[str, ...]
    weights: tuple[float, ...]
    bias: tuple[float, ...]
    """Per label; the first label's is 0."""
    fitted_on: int = 0
    cv_log_loss: float | None = None
    """Held-out log-loss per review of the candidate that was chosen (None when fitted without a choice)."""

    def apply(self, inputs: Mapping[str, npt.ArrayLike]) -> FloatArray:
        """(n, k) probabilities from each source's (n, k) probabilities; every source of the stack must be given."""
        missing = [source for source in self.sources if source not in inputs]
        if missing:
            raise ValueError(f"the stack needs {', '.join(missing)}")
        scores = _features(inputs, self.sources) @ np.asarray(self.weights) + np.asarray(self.bias)[None, :]
        probs: FloatArray = special.softmax(scores, axis=-1)
        return probs

    def to_json(self) -> dict[str, object]:
        return {
            "sources": list(self.sources),
            "weights": list(self.weights),
            "bias": list(self.bias),
            "fitted_on": self.fitted_on,
            "cv_log_loss": self.cv_log_loss,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Stack:
        loss = data.get("cv_log_loss")
        return cls(
            sources=tuple(str(s) for s in _listed(data["sources"])),
            weights=tuple(float(str(w)) for w in _listed(data["weights"])),
            bias=tuple(float(str(b)) for b in _listed(data["bias"])),
            fitted_on=int(str(data.get("fitted_on", 0))),
            cv_log_loss=None if loss is None else float(str(loss)),
        )

    def describe(self) -> str:
        """The weights as a reader would say them, e.g. ``teacher 0.42 + probe 1.31``."""
        return " + ".join(f"{source} {weight:.2f}" for source, weight in zip(self.sources, self.weights, strict=True))


def _listed(value: object) -> list[object]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return value


def _features(inputs: Mapping[str, npt.ArrayLike], sources: Sequence[str]) -> FloatArray:
    """(n, k, m) log-probabilities of the m sources."""
    logs = [np.log(np.clip(np.asarray(inputs[source], dtype=np.float64), _FLOOR, 1.0)) for source in sources]
    shapes = {log.shape for log in logs}
    if len(shapes) != 1 or logs[0].ndim != 2 or logs[0].shape[1] < 2:
        raise ValueError(f"every source must give (n, k) probabilities with k >= 2, got {sorted(shapes)}")
    features: FloatArray = np.stack(logs, axis=-1)
    return features


def fit_weights(*, inputs: Mapping[str, npt.ArrayLike], labels: npt.ArrayLike, sources: Sequence[str]) -> Stack:
    """The stack of ``sources`` with the least penalised negative log-likelihood of ``labels`` (n,) column indices.

    The bias is fitted only once every label has been reviewed (as in calibration); until then it stays 0.
    """
    features = _features(inputs, sources)
    n, k, m = features.shape
    y = np.asarray(labels, dtype=np.int64)
    if y.shape != (n,) or (n and (y.min() < 0 or y.max() >= k)):
        raise ValueError(f"labels must be ({n},) column indices in [0, {k})")
    if n == 0:
        return Stack(sources=tuple(sources), weights=(1.0,) * m, bias=(0.0,) * k)
    fit_bias = np.unique(y).size == k
    onehot = np.eye(k)[y]

    def loss(params: FloatArray) -> tuple[float, FloatArray]:
        weights, bias = params[:m], np.concatenate([[0.0], params[m:]]) if fit_bias else np.zeros(k)
        scores = features @ weights + bias
        log_probs = scores - special.logsumexp(scores, axis=1, keepdims=True)
        residual = np.exp(log_probs) - onehot
        value = -float((onehot * log_probs).sum()) + _WEIGHT_PRIOR * float(((weights - 1.0) ** 2).sum())
        grad_w = np.einsum("nk,nkm->m", residual, features) + 2 * _WEIGHT_PRIOR * (weights - 1.0)
        if not fit_bias:
            return value, grad_w
        value += _BIAS_PRIOR * float((bias[1:] ** 2).sum())
        return value, np.concatenate([grad_w, residual.sum(axis=0)[1:] + 2 * _BIAS_PRIOR * bias[1:]])

    start = np.concatenate([np.ones(m), np.zeros(k - 1 if fit_bias else 0)])
    bounds = [_WEIGHT_BOUNDS] * m + ([_BIAS_BOUNDS] * (k - 1) if fit_bias else [])
    params = optimize.minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds).x
    bias = (0.0, *(float(b) for b in params[m:])) if fit_bias else (0.0,) * k
    return Stack(sources=tuple(sources), weights=tuple(float(w) for w in params[:m]), bias=bias, fitted_on=n)


def candidates(available: Sequence[str]) -> list[tuple[str, ...]]:
    """The stacks worth trying: each source alone, and all of them together when there are several."""
    ordered = tuple(source for source in SOURCES if source in available)
    return [(source,) for source in ordered] + ([ordered] if len(ordered) > 1 else [])


def fold_of(n: int, folds: int = FOLDS) -> IntArray:
    """A fixed fold number per position (0, 1, ..., folds-1, 0, ...): deterministic, so a refit on the same reviews
    chooses the same stack."""
    assignment: IntArray = np.arange(n, dtype=np.int64) % folds
    return assignment


def cross_validated_log_loss(
    *, inputs: Mapping[str, npt.ArrayLike], labels: npt.ArrayLike, sources: Sequence[str], folds: int = FOLDS
) -> float:
    """Mean log-loss per item of the stack of ``sources``, each item scored by a stack fitted without its fold."""
    y = np.asarray(labels, dtype=np.int64)
    fold = fold_of(y.size, folds)
    total = 0.0
    for f in range(min(folds, y.size)):
        train, test = fold != f, fold == f
        stack = fit_weights(inputs=_rows(inputs, train), labels=y[train], sources=sources)
        probs = stack.apply(_rows(inputs, test))
        total -= float(np.log(np.clip(probs[np.arange(int(test.sum())), y[test]], 1e-12, None)).sum())
    return total / max(y.size, 1)


def fit_stack(*, inputs: Mapping[str, npt.ArrayLike], labels: npt.ArrayLike) -> Stack:
    """The candidate stack (see ``candidates``) with the lowest cross-validated log-loss on the reviewed items,
    refitted on all of them. ``inputs`` maps each available source to its (n, k) probabilities on those items."""
    y = np.asarray(labels, dtype=np.int64)
    options = candidates(list(inputs))
    if not options:
        raise ValueError("a stack needs at least one source")
    scored = [(cross_validated_log_loss(inputs=inputs, labels=y, sources=c), c) for c in options]
    best_loss, best = min(scored, key=lambda pair: pair[0])
    stack = fit_weights(inputs=inputs, labels=y, sources=best)
    return Stack(
        sources=stack.sources, weights=stack.weights, bias=stack.bias, fitted_on=stack.fitted_on, cv_log_loss=best_loss
    )


def _rows(inputs: Mapping[str, npt.ArrayLike], mask: npt.NDArray[np.bool_]) -> dict[str, FloatArray]:
    return {source: np.asarray(probs, dtype=np.float64)[mask] for source, probs in inputs.items()}


def cross_fitted(
    *,
    fit: Callable[[IntArray], Callable[[IntArray], FloatArray] | None],
    n: int,
    k: int,
    folds: int = FOLDS,
) -> FloatArray:
    """(n, k) probabilities of n labeled items from a model trained on them, each from a model fitted without its
    fold: ``fit(train_positions)`` returns a predictor of positions, or None when too few rows fit no model (those
    items get the uniform distribution, which a stack reads as no opinion)."""
    probs = np.full((n, k), 1.0 / k)
    fold = fold_of(n, folds)
    for f in range(min(folds, n)):
        predict = fit(np.flatnonzero(fold != f))
        if predict is not None:
            probs[fold == f] = predict(np.flatnonzero(fold == f))
    return probs


@dataclass(frozen=True)
class StackedLabeler:
    """A fitted labeler: the stack, and the probe it reads (None when the stack does not use one)."""

    stack: Stack
    probe: AnyProbe | None
    fit_probs: FloatArray | None = None
    """(n, k) probabilities of the items it was fitted on, the probe's cross-fitted (only the stack's few weights
    saw them): an estimate of how it will do on new items, for planning reviews, never for certifying."""

    def predict(self, teacher: FloatArray, items: ProbeInput | None) -> FloatArray:
        """(n, k) probabilities from the teacher's (n, k) raw scores and what the probe reads of the items."""
        inputs = {"teacher": np.asarray(teacher, dtype=np.float64)}
        if self.probe is not None and items is not None:
            inputs["probe"] = self.probe.predict(items)
        return self.stack.apply(inputs)


def fit_stacked(
    *,
    teacher: FloatArray,
    items: ProbeInput | None,
    labels: IntArray,
    n_labels: int,
    sources: Sequence[str],
    extra: ProbeInput | None = None,
    extra_labels: IntArray | None = None,
    kind: TaskKind = "single_label",
) -> StackedLabeler:
    """The labeler fitted on uniformly drawn labeled ``items``: the probe on all of them (and on ``extra`` human
    labels, items reviewed for looking wrong, which teach the probe but would bias the stack), the stack on the
    teacher's scores and the probe's cross-fitted probabilities (each item scored by a probe that did not see it).
    ``labels`` are column indices (pipeline/kinds.py); a multi-label task's probe is one-vs-rest."""
    fit_probe_of_kind = probe_fitter(kind)
    inputs: dict[str, FloatArray] = {"teacher": teacher} if "teacher" in sources else {}
    probe = None
    if "probe" in sources and items is not None:
        seen = items
        more = extra if extra is not None else seen.take(np.zeros(0, dtype=np.int64))
        more_labels = np.zeros(0, dtype=np.int64) if extra_labels is None else extra_labels

        def fit(rows: IntArray) -> Callable[[IntArray], FloatArray] | None:
            fitted = fit_probe_of_kind(
                inputs=seen.take(rows).plus(more),
                labels=np.concatenate([labels[rows], more_labels]),
                n_labels=n_labels,
            )
            return None if fitted is None else (lambda held: fitted.predict(seen.take(held)))

        probe = fit_probe_of_kind(
            inputs=seen.plus(more), labels=np.concatenate([labels, more_labels]), n_labels=n_labels
        )
        if probe is not None:
            inputs["probe"] = cross_fitted(fit=fit, n=labels.size, k=n_labels)
    if not inputs:
        inputs = {"teacher": teacher}
    stack = fit_stack(inputs=inputs, labels=labels)
    return StackedLabeler(stack=stack, probe=probe if "probe" in stack.sources else None, fit_probs=stack.apply(inputs))
