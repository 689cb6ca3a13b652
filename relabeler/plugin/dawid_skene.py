"""Dawid-Skene EM with the model as a prior: several annotators' answers resolved to one label.

Each annotator has one accuracy (a "one-coin" model: right with probability ``a_j``, else one
of the other classes); the task's prior is the model's probabilities mixed with the class
marginal, ``lam * p_i + (1 - lam) * pi``, where ``lam`` (how far the model can be trusted) is
estimated with the accuracies. EM alternates: the posterior of each task's true class given
the answers and the prior; then the accuracies, ``lam`` and ``pi`` from the posteriors.
Per-annotator confusion matrices were not used: with a few hundred tasks and five classes
their 20 cells per annotator are noise, and annotators' mistakes land on the model's most
plausible wrong class, which a full matrix would read as skill.

Written here because cleanlab offers CROWDLAB (a weighted ensemble whose weights come from
agreement, not a likelihood) and no EM; on the dev datasets CROWDLAB stays near majority vote
where this reaches the best annotator's accuracy (docs/benchmarks.md, "Annotators").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MISSING = -1  # no answer from that annotator on that task


@dataclass(frozen=True)
class DawidSkeneResult:
    """posterior: (N, K) each task's class probabilities; accuracy: (J,) each annotator's
    estimated accuracy; model_weight: how much of the prior is the model (0..1);
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
                tol: float = 1e-6, mistake_weight: float = 0.5) -> DawidSkeneResult:
    """Resolve ``answers`` with the model's ``probs`` as a prior.

    answers: (N, J) int, class index per task and annotator, ``MISSING`` (-1) where that
    annotator did not answer. probs: (N, K) float, the model's probabilities (rows sum to 1).
    Every task needs at least one answer.
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
                                mistake_weight=mistake_weight)


def _compute_dawid_skene(answers: np.ndarray, probs: np.ndarray, *, max_iter: int,
                         tol: float, mistake_weight: float) -> DawidSkeneResult:
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
    lam, iterations = 0.5, 0
    accuracy = np.full(answers.shape[1], 0.7)
    while iterations < max_iter:
        iterations += 1
        # M step; a Beta(2, 1) prior keeps an annotator with few answers near "better than
        # chance" instead of at 0 or 1
        right = (onehot * posterior[:, None, :]).sum(axis=2)
        accuracy = (right.sum(axis=0) + 2.0) / (given.sum(axis=0) + 3.0)
        accuracy = np.clip(accuracy, 1e-3, 1 - 1e-3)
        marginal = np.clip(posterior.mean(axis=0), 1e-6, None)
        marginal /= marginal.sum()
        from_model = lam * probs / (lam * probs + (1 - lam) * marginal)
        lam = float(np.clip((posterior * from_model).sum(axis=1).mean(), 1e-3, 1 - 1e-3))
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
        log_post = np.log(lam * probs + (1 - lam) * marginal) + (
            given[:, :, None] * log_like).sum(axis=1)
        log_post -= log_post.max(axis=1, keepdims=True)
        updated = np.exp(log_post)
        updated /= updated.sum(axis=1, keepdims=True)
        change = float(np.abs(updated - posterior).max()) if n else 0.0
        posterior = updated
        if change < tol:
            break
    return DawidSkeneResult(posterior=posterior, accuracy=accuracy, model_weight=lam,
                            mistake_weight=mistake_weight, iterations=iterations)


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
