"""Dawid-Skene EM with the model as a prior: several annotators' answers resolved to one label.

Each annotator has one accuracy (a "one-coin" model: right with probability ``a_j``); a
mistake lands on a wrong class in proportion to the model's probability of it raised to a
learned sharpness (0: uniformly; large: on the model's most plausible wrong class, as tired
people do). The task's prior is the model's probabilities tempered by a learned weight
``w`` and shifted by a learned log-bias ``b_k`` per class (``p_k ** w * exp(b_k)``,
normalised): ``w`` = 0 ignores the model, 1 takes its probabilities as they are, above 1
trusts it more than they say; ``b`` recalibrates the classes on the answered tasks, whose mix
differs from the data the model was fitted on (the queue holds its suspects, and it leans to
the classes that were common there). So the model counts as much as it earns on the answered
tasks. With ``groups`` each group of tasks earns its own weight and biases: the model is right
on most tasks of a first round (it flagged them) and wrong on most of a later one (the same
model's remaining suspects are mostly clean), so one weight for both would side with it where
it fails. EM alternates: each task's posterior over the true class given the answers and the
prior; then the accuracies, ``w``, ``b`` and the sharpness from the posteriors.
An accuracy per annotator and true class (a step towards full confusion matrices, whose 20
cells per annotator with five classes a few hundred tasks cannot fill) was 1 point less
accurate on drug-review and sms-spam than one accuracy per annotator.

Written here because cleanlab has no likelihood model of annotators: its CROWDLAB
(``cleanlab.multiannotator``) weighs them by agreement; with annotators of 0.95, 0.8 and 0.65
whose mistakes follow the model it stays at majority vote on sms-spam and drug-review, where
this EM is 4 to 7 points above it (docs/benchmarks.md, "Annotators, over seeds").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MISSING = -1  # no answer from that annotator on that task


@dataclass(frozen=True)
class DawidSkeneResult:
    """posterior: (N, K) each task's class probabilities; accuracy: (J,) each annotator's
    estimated accuracy; model_weight: the temperature ``w`` of the model's prior (0 = ignored,
    1 = as it is; with groups, the tasks' mean); group_weights: each group's weight;
    class_bias: (G, K) each group's log-bias per class added to the tempered prior;
    mistake_sharpness: where mistakes land (0 = uniformly on the wrong classes, 1 = in
    proportion to the model's probabilities, large = on its most plausible wrong class);
    iterations."""

    posterior: np.ndarray
    accuracy: np.ndarray
    model_weight: float
    group_weights: tuple[float, ...]
    class_bias: np.ndarray
    mistake_sharpness: float
    iterations: int

    @property
    def labels(self) -> np.ndarray:
        """(N,) the resolved class of each task."""
        return self.posterior.argmax(axis=1)


def dawid_skene(answers: np.ndarray, probs: np.ndarray, *, groups: np.ndarray | None = None,
                max_iter: int = 100, tol: float = 1e-6, max_model_weight: float = 4.0,
                max_sharpness: float = 8.0) -> DawidSkeneResult:
    """Resolve ``answers`` with the model's ``probs`` as a prior.

    answers: (N, J) int, class index per task and annotator, ``MISSING`` (-1) where that
    annotator did not answer. probs: (N, K) float, the model's probabilities (rows sum to 1).
    Every task needs at least one answer. groups: (N,) int in [0, G), the group of each task
    whose model weight is fitted on its own (None: one group). max_model_weight,
    max_sharpness: the upper bounds of the two learned weights (see
    :class:`DawidSkeneResult`).
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
    groups = np.zeros(len(probs), dtype=np.int64) if groups is None else np.asarray(groups)
    if groups.shape != (len(probs),) or not np.issubdtype(groups.dtype, np.integer) or (
            len(groups) and groups.min() < 0):
        raise ValueError(f"groups must be {len(probs)} non-negative integers")
    probs = np.clip(probs, 1e-9, None)
    probs = probs / probs.sum(axis=1, keepdims=True)
    return _compute_dawid_skene(answers, probs, groups, max_iter=max_iter, tol=tol,
                                max_model_weight=max_model_weight, max_sharpness=max_sharpness)


def _compute_dawid_skene(answers: np.ndarray, probs: np.ndarray, groups: np.ndarray, *,
                         max_iter: int,
                         tol: float, max_model_weight: float, max_sharpness: float
                         ) -> DawidSkeneResult:
    n, n_classes = probs.shape
    log_probs = np.log(probs)
    given = answers != MISSING
    # one-hot answers: (N, J, K)
    onehot = np.zeros((*answers.shape, n_classes))
    rows, cols = np.nonzero(given)
    onehot[rows, cols, answers[rows, cols]] = 1.0
    # onehot_true[i, j, k]: annotator j's answer on task i is class k
    onehot_true = onehot.astype(bool)
    answered = np.where(given, answers, 0)
    log_p_answer = log_probs[np.arange(n)[:, None], answered]               # (N, J)

    def log_mistake(sharpness: float) -> np.ndarray:
        """(N, J, K): log of the share of the wrong classes that annotator j's answer gets
        when the truth is k: p_answer ** s / sum over the classes but k of p ** s."""
        scaled = sharpness * log_probs
        top = scaled.max(axis=1, keepdims=True)
        mass = np.exp(scaled - top)
        rest = np.clip(mass.sum(axis=1, keepdims=True) - mass, 1e-300, None)
        return (sharpness * log_p_answer - top)[:, :, None] - np.log(rest)[:, None, :]

    # start from the answers' vote shares, nudged by the model (breaks ties)
    posterior = onehot.sum(axis=1) + 0.5 * probs
    posterior /= posterior.sum(axis=1, keepdims=True)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    task_group = np.unique(groups, return_inverse=True)[1]
    weights = np.ones(len(probs))
    biases = np.zeros((len(members), n_classes))
    sharpness, iterations = 1.0, 0
    accuracy = np.full(answers.shape[1], 0.7)
    while iterations < max_iter:
        iterations += 1
        # M step; a Beta(2, 1) prior keeps an annotator with few answers near "better than
        # chance" instead of at 0 or 1
        right = (onehot * posterior[:, None, :]).sum(axis=2)
        accuracy = (right.sum(axis=0) + 2.0) / (given.sum(axis=0) + 3.0)
        accuracy = np.clip(accuracy, 1e-3, 1 - 1e-3)
        for g, rows in enumerate(members):
            weights[rows], biases[g] = _fit_prior(log_probs[rows], posterior[rows],
                                                  float(weights[rows[0]]), biases[g],
                                                  max_model_weight)
        wrong = posterior[:, None, :] * (given[:, :, None] & ~onehot_true)
        sharpness = _fit_scalar(
            lambda s, wrong=wrong: -float((wrong * log_mistake(s)).sum()), max_sharpness)
        # E step
        # log P(answer | true class k) per task, annotator and k: right with a_j, else the
        # answer's share of the wrong classes
        log_like = np.where(onehot_true, np.log(accuracy)[None, :, None],
                            np.log(1 - accuracy)[None, :, None] + log_mistake(sharpness))
        log_post = (weights[:, None] * log_probs + biases[task_group]
                    + (given[:, :, None] * log_like).sum(axis=1))
        log_post -= log_post.max(axis=1, keepdims=True)
        updated = np.exp(log_post)
        updated /= updated.sum(axis=1, keepdims=True)
        change = float(np.abs(updated - posterior).max()) if n else 0.0
        posterior = updated
        if change < tol:
            break
    return DawidSkeneResult(posterior=posterior, accuracy=accuracy,
                            model_weight=float(weights.mean()) if n else 1.0,
                            group_weights=tuple(float(weights[rows[0]]) for rows in members),
                            class_bias=biases,
                            mistake_sharpness=sharpness, iterations=iterations)


#: the spread of the class log-biases a priori (a normal prior, as a ridge): a class with few
#: answered tasks keeps a bias near 0 instead of running off to +-infinity
BIAS_SCALE = 1.0


def _fit_prior(log_probs: np.ndarray, posterior: np.ndarray, weight: float, bias: np.ndarray,
               max_weight: float) -> tuple[float, np.ndarray]:
    """The weight in [0, max_weight] and the class biases that maximise
    ``sum_ik posterior_ik log softmax(weight * log p_i + bias)_k - |bias|^2 / (2 BIAS_SCALE^2)``
    (concave: a multinomial logistic regression on one feature per class), from the given
    start. log_probs, posterior: (N, K)."""
    from scipy.optimize import minimize

    counts = posterior.sum(axis=0)
    observed = float((posterior * log_probs).sum())

    def loss(x: np.ndarray) -> tuple[float, np.ndarray]:
        scaled = x[0] * log_probs + x[1:]
        top = scaled.max(axis=1, keepdims=True)
        mass = np.exp(scaled - top)
        norm = mass.sum(axis=1, keepdims=True)
        prior = mass / norm
        value = (float((posterior * scaled).sum() - (top + np.log(norm)).sum())
                 - float(x[1:] @ x[1:]) / (2 * BIAS_SCALE ** 2))
        grad = np.concatenate([[observed - float((prior * log_probs).sum())],
                               counts - prior.sum(axis=0) - x[1:] / BIAS_SCALE ** 2])
        return -value, -grad

    found = minimize(loss, np.concatenate([[min(weight, max_weight)], bias]), jac=True,
                     method="L-BFGS-B", bounds=[(0.0, max_weight)] + [(None, None)] * len(bias))
    return float(found.x[0]), found.x[1:]


def _fit_scalar(loss, high: float) -> float:
    """The minimiser of a one-parameter loss on [0, high] (bounded Brent search)."""
    from scipy.optimize import minimize_scalar

    return float(minimize_scalar(loss, bounds=(0.0, high), method="bounded",
                                 options={"xatol": 1e-3}).x)


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
