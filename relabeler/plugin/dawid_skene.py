"""Dawid-Skene EM with the model as a prior: several annotators' answers resolved to one label.

Each annotator has one accuracy (a "one-coin" model: right with probability ``a_j``); a
mistake lands on a class the model finds plausible (its share of the model's wrong-class
probability) with a weight learned from the answers, else uniformly on the wrong classes. The
task's prior is the model's probabilities tempered by a weight ``w`` (``p ** w``, normalised):
0 ignores the model, 1 takes its probabilities as they are, above 1 trusts it more than they
say; ``w`` is estimated with the accuracies, so the model counts as much as it earns on the
answered tasks. EM alternates: each task's posterior over the true class given the answers and
the prior; then the accuracies, ``w`` and the mistake weight from the posteriors.
Per-annotator confusion matrices were not used: with a few hundred tasks and five classes
their 20 cells per annotator are noise.

Written here because cleanlab has no likelihood model of annotators: its CROWDLAB
(``cleanlab.multiannotator``) weighs annotators by agreement and, with annotators of 0.95, 0.8
and 0.65 whose mistakes follow the model, stays near majority vote on sms-spam and
drug-review, where this EM comes within a point of the best annotator (docs/benchmarks.md,
"Annotators, over seeds").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MISSING = -1  # no answer from that annotator on that task


@dataclass(frozen=True)
class DawidSkeneResult:
    """posterior: (N, K) each task's class probabilities; accuracy: (J,) each annotator's
    estimated accuracy; model_weight: the temperature ``w`` of the model's prior (0 = ignored,
    1 = as it is);
    mistake_weight: the share of mistakes that land on the classes the model finds plausible
    (the rest: uniform over the wrong classes); iterations."""

    posterior: np.ndarray
    accuracy: np.ndarray
    model_weight: float
    mistake_weight: float
    iterations: int

    @property
    def labels(self) -> np.ndarray:
        """(N,) the resolved class of each task."""
        return self.posterior.argmax(axis=1)


def dawid_skene(answers: np.ndarray, probs: np.ndarray, *, max_iter: int = 100,
                tol: float = 1e-6, mistake_weight: float = 0.5, max_model_weight: float = 4.0
                ) -> DawidSkeneResult:
    """Resolve ``answers`` with the model's ``probs`` as a prior.

    answers: (N, J) int, class index per task and annotator, ``MISSING`` (-1) where that
    annotator did not answer. probs: (N, K) float, the model's probabilities (rows sum to 1).
    Every task needs at least one answer. mistake_weight: the starting share of mistakes that
    follow the model (then learned); max_model_weight: the largest temperature of the prior.
    """
    answers = np.asarray(answers)
    probs = np.asarray(probs, dtype=np.float64)
    if answers.ndim != 2 or probs.ndim != 2:
        raise ValueError(f"answers and probs must be 2-D, got shapes {answers.shape} and "
                         f"{probs.shape}")
    if answers.shape[0] != probs.shape[0]:
        raise ValueError(f"answers has {answers.shape[0]} tasks, probs {probs.shape[0]}")
    if not np.issubdtype(answers.dtype, np.integer):
        raise TypeError(f"answers must be integer class indices, got {answers.dtype}")
    n_classes = probs.shape[1]
    if n_classes < 2:
        raise ValueError(f"probs must have at least 2 classes, got {n_classes}")
    if answers.size and (answers.max() >= n_classes or answers.min() < MISSING):
        raise ValueError(f"answers must lie in [-1, {n_classes - 1}], got "
                         f"[{answers.min()}, {answers.max()}]")
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise ValueError("probs must be finite and non-negative")
    if ((answers != MISSING).sum(axis=1) == 0).any():
        raise ValueError("every task needs at least one answer")
    probs = np.clip(probs, 1e-9, None)
    probs = probs / probs.sum(axis=1, keepdims=True)
    return _compute_dawid_skene(answers, probs, max_iter=max_iter, tol=tol,
                                mistake_weight=mistake_weight,
                                max_model_weight=max_model_weight)


def _compute_dawid_skene(answers: np.ndarray, probs: np.ndarray, *, max_iter: int,
                         tol: float, mistake_weight: float, max_model_weight: float
                         ) -> DawidSkeneResult:
    n, n_classes = probs.shape
    given = answers != MISSING
    # one-hot answers: (N, J, K)
    onehot = np.zeros((*answers.shape, n_classes))
    rows, cols = np.nonzero(given)
    onehot[rows, cols, answers[rows, cols]] = 1.0
    # onehot_true[i, j, k]: annotator j's answer on task i is class k
    onehot_true = onehot.astype(bool)
    # log_mistake[i, j, k]: how likely annotator j's answer is as a mistake when the truth is k
    # (a mistake lands on a class the model finds plausible, mixed with uniform)
    answered = np.where(given, answers, 0)
    p_answer = probs[np.arange(n)[:, None], answered]                    # (N, J)
    wrong_share = p_answer[:, :, None] / np.clip(1 - probs[:, None, :], 1e-9, None)
    uniform = 1.0 / (n_classes - 1)
    # start from the answers' vote shares, nudged by the model (breaks ties)
    posterior = onehot.sum(axis=1) + 0.5 * probs
    posterior /= posterior.sum(axis=1, keepdims=True)
    log_probs = np.log(probs)
    model_weight, iterations = 1.0, 0
    accuracy = np.full(answers.shape[1], 0.7)
    while iterations < max_iter:
        iterations += 1
        # M step; a Beta(2, 1) prior keeps an annotator with few answers near "better than
        # chance" instead of at 0 or 1
        right = (onehot * posterior[:, None, :]).sum(axis=2)
        accuracy = (right.sum(axis=0) + 2.0) / (given.sum(axis=0) + 3.0)
        accuracy = np.clip(accuracy, 1e-3, 1 - 1e-3)
        model_weight = _fit_temperature(posterior, log_probs, max_weight=max_model_weight)
        # how many mistakes land on the model's plausible classes rather than anywhere
        wrong = posterior[:, None, :] * (given[:, :, None] & ~onehot_true)
        plausible = mistake_weight * wrong_share
        share = plausible / (plausible + (1 - mistake_weight) * uniform)
        if wrong.sum() > 0:
            mistake_weight = float(np.clip((wrong * share).sum() / wrong.sum(), 1e-3, 1 - 1e-3))
        log_mistake = np.log(np.clip(mistake_weight * wrong_share
                                     + (1 - mistake_weight) * uniform, 1e-12, None))
        # E step
        # log P(answer | true class k) per task, annotator and k: right with a_j, else the
        # answer's share of the wrong classes
        log_like = np.where(onehot_true, np.log(accuracy)[None, :, None],
                            np.log(1 - accuracy)[None, :, None] + log_mistake)
        log_post = model_weight * log_probs + (given[:, :, None] * log_like).sum(axis=1)
        log_post -= log_post.max(axis=1, keepdims=True)
        updated = np.exp(log_post)
        updated /= updated.sum(axis=1, keepdims=True)
        change = float(np.abs(updated - posterior).max()) if n else 0.0
        posterior = updated
        if change < tol:
            break
    return DawidSkeneResult(posterior=posterior, accuracy=accuracy, model_weight=model_weight,
                            mistake_weight=mistake_weight, iterations=iterations)


def _fit_temperature(posterior: np.ndarray, log_probs: np.ndarray, *, max_weight: float
                     ) -> float:
    """The weight w maximising sum_i sum_k posterior_ik log softmax(w * log p_i)_k: concave in
    w, so a bounded scalar search finds it."""
    from scipy.optimize import minimize_scalar

    def loss(weight: float) -> float:
        scaled = weight * log_probs
        top = scaled.max(axis=1, keepdims=True)
        log_norm = top[:, 0] + np.log(np.exp(scaled - top).sum(axis=1))
        return -float((posterior * scaled).sum() - log_norm.sum())

    found = minimize_scalar(loss, bounds=(0.0, max_weight), method="bounded",
                            options={"xatol": 1e-3})
    return float(found.x)


def flip_chance(posterior: np.ndarray, accuracy: float) -> np.ndarray:
    """(N,) the chance that one more answer, from an annotator of ``accuracy``, changes each
    task's resolved label (a tie before or after counts as a change): the order in which to ask
    again. posterior: (N, K)."""
    n_classes = posterior.shape[1]
    current = posterior.argmax(axis=1)
    tied = np.isclose(posterior, posterior.max(axis=1, keepdims=True)).sum(axis=1) > 1
    like = np.full((n_classes, n_classes), (1 - accuracy) / (n_classes - 1))
    np.fill_diagonal(like, accuracy)
    chance = np.zeros(len(posterior))
    for answer in range(n_classes):
        joint = posterior * like[answer][None, :]  # (N, K): P(true = k, next answer)
        p_answer = joint.sum(axis=1)
        best = joint.max(axis=1)
        changes = tied | (joint.argmax(axis=1) != current) | (
            np.isclose(joint, best[:, None]).sum(axis=1) > 1)
        chance += p_answer * changes
    return chance
