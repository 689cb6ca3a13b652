"""Representer points (Yeh et al. 2018): which training samples push a prediction, and how hard.

Refit the classifier's final linear layer on the frozen features ``f_i`` (the head's input) with
an L2 penalty::

    W* = argmin_W  (1/n) sum_i CE(softmax(W f_i), t_i) + lam * ||W||^2

At the optimum the gradient vanishes, so ``W* = sum_i alpha_i f_i^T`` with
``alpha_ic = -(p_ic - t_ic) / (2 lam n)`` (``p`` the refit's probabilities, ``t`` the one-hot
given labels), and every logit decomposes over the training set::

    W* f_t = sum_i alpha_i (f_i . f_t)

The bias is handled by appending a constant 1 feature, so it is penalised with the weights;
without the penalty the decomposition would not hold for it. ``bias=False`` fits no bias.

* :func:`fit_representer`: the refit on the given labels, checked against the model's own
  predictions (``agreement``) and against the decomposition (``reconstruction_error``).
* :func:`representer_suspect`: the self-influence ``alpha_{i,y_i} ||f_i||^2``: in-sample
  ``1 - p`` times a norm, so a weak detector; the value of the fit is the evidence
  (:func:`relabeler.selectors.evidence.representer_evidence`).
* :func:`fit_trustai` and :func:`trustai_dirty_score`: TrustAI's variant, refit to the model's
  own probabilities, blind to the given label; kept for simulations to compare against.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch

from relabeler.selectors._checks import as_count, as_labels, as_matrix, as_probs
from relabeler.selectors.threads import small_work_threads

log = logging.getLogger(__name__)

# a refit whose decomposition misses W f by more than this did not converge
RECONSTRUCTION_WARN = 1e-3


class RepresenterFitError(ValueError):
    """The refit does not reproduce the model well enough to explain it; ``agreement``: the
    share of the model's predictions it does reproduce."""

    def __init__(self, message: str, *, agreement: float = float("nan")):
        super().__init__(message)
        self.agreement = agreement


@dataclass(frozen=True)
class RepresenterFit:
    """An L2-regularised refit of the classifier head and its representer values.

    Attributes
    ----------
    weight : (C, D') float64 refit weights; ``D' = D + 1`` with the bias feature (last column).
    alpha : (N, C) float32, ``alpha_ic = -(p_ic - t_ic) / (2 lam n)``.
    probs : (N, C) float32 refit probabilities on the training features.
    lam : the L2 strength.
    agreement : share of samples where the refit's argmax equals the model's prediction
        (``nan`` when no prediction was given).
    reconstruction_error : ``max |sum_i alpha_i f_i.f_t - W f_t| / max |W f_t|`` over the
        training set; near 0 when the fit converged.
    target : ``"labels"`` (Yeh, the given labels) or ``"model_probs"`` (TrustAI).
    bias : whether a constant 1 feature was appended.
    n_iter : LBFGS iterations run.
    """

    weight: np.ndarray
    alpha: np.ndarray
    probs: np.ndarray
    lam: float
    agreement: float
    reconstruction_error: float
    target: str
    bias: bool
    n_iter: int

    @property
    def num_classes(self) -> int:
        return self.alpha.shape[1]

    @property
    def num_features(self) -> int:
        """D, the width of the features the fit was made on (without the bias feature)."""
        return self.weight.shape[1] - int(self.bias)

    def design(self, name: str, features, rows: int | None = None) -> np.ndarray:
        """``features`` (named ``name`` in errors) checked to have D columns (and ``rows``
        rows), with the bias feature appended when the fit has one: the ``f`` of the alphas."""
        return _with_bias(as_matrix(name, features, rows=rows, cols=self.num_features),
                          self.bias)



def fit_representer(features: np.ndarray, labels: np.ndarray, *,
                    model_pred: np.ndarray | None = None, num_classes: int | None = None,
                    lam: float = 1e-3, max_iter: int = 500, min_agreement: float = 0.9,
                    bias: bool = True, device: str = "auto", init_weight: np.ndarray | None = None,
                    init_bias: np.ndarray | None = None) -> RepresenterFit:
    """Refit the final linear layer on the given labels (Yeh et al. 2018).

    Parameters
    ----------
    features : (N, D) float, the classifier head's input for the training set.
    labels : (N,) int given class ids in [0, C).
    model_pred : (N,) int, the model's predicted classes. When given, a refit whose argmax agrees
        with it on fewer than ``min_agreement`` of the samples raises :class:`RepresenterFitError`.
    num_classes : C; ``labels.max() + 1`` when omitted.
    lam : L2 strength (> 0). Smaller follows the data more closely (higher agreement) and makes
        the alphas larger; LBFGS needs more iterations.
    max_iter : LBFGS iteration cap (one full-batch pass each, plus line-search evaluations).
    bias : append a constant 1 feature (a penalised bias).
    device : ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda[:i]"``; float64
        on either.
    init_weight, init_bias : (C, D) and (C,) warm start, e.g. the model's own head; the problem is
        convex, so this changes the time taken, not the answer.

    Returns
    -------
    RepresenterFit with ``target="labels"``.
    """
    matrix = as_matrix("features", features)
    n = len(matrix)
    labels = as_labels("labels", labels, n=n)
    if n == 0:
        raise ValueError("features: expected at least one row, got shape (0, D)")
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    else:
        as_count("num_classes", num_classes, 2)
    labels = as_labels("labels", labels, num_classes=num_classes)
    present = np.unique(labels)
    if len(present) < 2:
        raise ValueError(f"labels: all {n} samples have class {int(present[0])}; the "
                         "representer refit needs at least two classes")
    if model_pred is not None:
        model_pred = as_labels("model_pred", model_pred, n=n, num_classes=num_classes)
    targets = np.eye(num_classes)[labels]
    return _fit(matrix, targets, target="labels", model_pred=model_pred, lam=lam,
                max_iter=max_iter, min_agreement=min_agreement, bias=bias, device=device,
                init_weight=init_weight, init_bias=init_bias)


def fit_trustai(features: np.ndarray, model_probs: np.ndarray, *, lam: float = 1e-3,
                max_iter: int = 500, min_agreement: float = 0.9, bias: bool = True,
                device: str = "auto", init_weight: np.ndarray | None = None,
                init_bias: np.ndarray | None = None) -> RepresenterFit:
    """TrustAI's variant: refit to the model's own probabilities (soft targets).

    ``alpha = -(p_refit - p_model) / (2 lam n)``: it measures where the regularised refit cannot
    follow the model, and never sees the given labels. Arguments as in :func:`fit_representer`;
    the agreement is checked against ``argmax(model_probs)``.

    Parameters
    ----------
    features : (N, D) float, the classifier head's input.
    model_probs : (N, C) float, the model's probabilities; rows sum to 1 (tolerance 1e-3).

    Returns
    -------
    RepresenterFit with ``target="model_probs"``.
    """
    matrix = as_matrix("features", features)
    if len(matrix) == 0:
        raise ValueError("features: expected at least one row, got shape (0, D)")
    probs = as_probs("model_probs", model_probs, rows=len(matrix)).astype(np.float64)
    probs = np.clip(probs, 0.0, None)
    probs /= probs.sum(axis=1, keepdims=True)
    return _fit(matrix, probs, target="model_probs", model_pred=probs.argmax(axis=1), lam=lam,
                max_iter=max_iter, min_agreement=min_agreement, bias=bias, device=device,
                init_weight=init_weight, init_bias=init_bias)


def _fit(features: np.ndarray, targets: np.ndarray, *, target: str,
         model_pred: np.ndarray | None, lam: float, max_iter: int, min_agreement: float,
         bias: bool, device: str, init_weight, init_bias) -> RepresenterFit:
    """Validate the options shared by both fits, run the refit, check agreement."""
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real) or not lam > 0 \
            or not math.isfinite(lam):
        raise ValueError(f"lam: expected a finite number > 0, got {lam!r}")
    as_count("max_iter", max_iter)
    if not 0.0 <= min_agreement <= 1.0:
        raise ValueError(f"min_agreement: expected a share in [0, 1], got {min_agreement!r}")
    n, dim = features.shape
    num_classes = targets.shape[1]
    init = _initial_weight(init_weight, init_bias, num_classes, dim, bias)
    torch_device = _resolve_device(device)
    weight, probs, alpha, error, n_iter = _compute_fit(
        _with_bias(features, bias), targets, float(lam), int(max_iter), torch_device, init)
    agreement = float("nan")
    if model_pred is not None:
        agreement = float(np.mean(probs.argmax(axis=1) == model_pred))
    # a fit to the labels has no model to agree with: "n/a", not "nan"
    shown = "n/a" if model_pred is None else f"{agreement:.3f}"
    log.info("representer refit (%s): n=%d C=%d lam=%g, %d LBFGS iterations, agreement %s, "
             "reconstruction error %.2e", target, n, num_classes, lam, n_iter, shown, error)
    if error > RECONSTRUCTION_WARN:
        log.warning("representer refit did not converge: the decomposition misses W f by %.2e "
                    "(relative); raise max_iter (now %d)", error, max_iter)
    if model_pred is not None and agreement < min_agreement:
        raise RepresenterFitError(
            f"representer refit agrees with the model's predictions on {agreement:.1%} of the "
            f"{n} samples, below min_agreement={min_agreement:.1%}: its alphas would not explain "
            f"this model. Lower lam (now {lam:g}) so the refit can follow the model, or check "
            "that features are the classifier head's input, row for row with the predictions.",
            agreement=agreement)
    return RepresenterFit(weight=weight, alpha=alpha.astype(np.float32),
                          probs=probs.astype(np.float32), lam=float(lam), agreement=agreement,
                          reconstruction_error=error, target=target, bias=bias, n_iter=n_iter)


def _initial_weight(init_weight, init_bias, num_classes: int, dim: int,
                    bias: bool) -> np.ndarray | None:
    if init_weight is None:
        if init_bias is not None:
            raise ValueError("init_bias: given without init_weight")
        return None
    weight = as_matrix("init_weight", init_weight, rows=num_classes, cols=dim)
    if not bias:
        if init_bias is not None:
            raise ValueError("init_bias: given with bias=False")
        return weight.astype(np.float64)
    bias_col = np.zeros(num_classes)
    if init_bias is not None:
        bias_col = as_matrix("init_bias", np.asarray(init_bias).reshape(-1, 1),
                             rows=num_classes)[:, 0]
    return np.concatenate([weight, bias_col[:, None]], axis=1).astype(np.float64)


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: expected 'auto', 'cpu' or 'cuda[:i]', got {device!r}") from exc
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device: expected 'auto', 'cpu' or 'cuda[:i]', got {device!r}")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} asked for, but torch sees no CUDA device")
    return resolved


def _with_bias(features: np.ndarray, bias: bool) -> np.ndarray:
    if not bias:
        return features
    return np.concatenate([features, np.ones((len(features), 1), features.dtype)], axis=1)


def _compute_fit(features: np.ndarray, targets: np.ndarray, lam: float, max_iter: int,
                 device: torch.device, init: np.ndarray | None):
    """Full-batch LBFGS on (N, D') features and (N, C) targets (rows summing to 1).

    float64 on every device: the decomposition is only as exact as the stationarity, whose
    residual is ``grad / (2 lam)``, and in float32 LBFGS stops where rounding hides the
    progress, far from it (docs/benchmarks.md, "Scoring"). Not scikit-learn's
    LogisticRegression: it takes no soft targets (TrustAI) and runs on CPU only.
    Returns weight (C, D') and probs, alpha (N, C), all float64; reconstruction error; iterations.
    """
    dtype = torch.float64
    x32 = torch.as_tensor(np.ascontiguousarray(features, dtype=np.float32), device=device)
    x = x32.to(dtype)
    t = torch.as_tensor(targets, device=device).to(dtype)
    n, num_classes = len(x), t.shape[1]
    precond, precond_inv = _preconditioner(x32, lam, num_classes)
    del x32
    start = torch.zeros(num_classes, x.shape[1], dtype=dtype, device=device)
    if init is not None:
        start = torch.as_tensor(init, device=device).to(dtype) @ precond_inv
    # LBFGS over U with W = U P: the same convex problem, but P (the inverse square root of a
    # Hessian estimate) makes it well conditioned, so LBFGS needs few iterations.
    # W is formed first, (C, D') x (D', D'), so each pass over the features is (N, D') x (D', C)
    u = start.clone()
    optimizer = torch.optim.LBFGS([u], lr=1.0, max_iter=max_iter, history_size=20,
                                  tolerance_grad=1e-10, tolerance_change=1e-14,
                                  line_search_fn="strong_wolfe")
    # the gradient by hand: d loss / d W = (p - t)^T x / n + 2 lam W. The rows of p - t sum
    # to 0, so its last column is minus the sum of the others and C - 1 products over x do,
    # cheaper than autograd's backward pass over x
    t = t / t.sum(dim=1, keepdim=True)

    def closure():
        w = u @ precond
        log_probs = torch.log_softmax(x @ w.T, dim=1)
        loss = -(t * log_probs).sum() / n + lam * (w * w).sum()
        residual = (log_probs.exp_() - t).T[:-1].contiguous()
        grad_w = torch.empty_like(w)
        torch.mm(residual, x, out=grad_w[:-1])
        grad_w[-1] = -grad_w[:-1].sum(dim=0)
        grad_w.div_(n).add_(w, alpha=2.0 * lam)
        u.grad = grad_w @ precond     # d loss / d U = (d loss / d W) P^T, P symmetric
        return loss

    # each pass is small (N x D' x C multiply-adds): one thread, unlike the Gram matrix above
    with small_work_threads(x.shape[0] * x.shape[1] * num_classes, device):
        optimizer.step(closure)
    weight = u.detach() @ precond
    n_iter = int(optimizer.state[u].get("n_iter", 0))
    with torch.no_grad():
        logits = x @ weight.T
        probs = torch.softmax(logits, dim=1)
        alpha = -(probs - t) / (2.0 * lam * n)
        # the decomposition through (C, D') only: sum_i alpha_i f_i^T, then times f_t
        rebuilt = x @ (alpha.T @ x).T
        scale = logits.abs().max().clamp_min(torch.finfo(dtype).tiny)
        error = float(((rebuilt - logits).abs().max() / scale).item())
    return (weight.detach().cpu().double().numpy(), probs.cpu().double().numpy(),
            alpha.cpu().double().numpy(), error, n_iter)


def _preconditioner(x32: torch.Tensor, lam: float, num_classes: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """P = H^(-1/2) and P^(-1) for H = s X^T X / n + 2 lam I, a per-class estimate of the
    Hessian of the L2-regularised softmax loss (s = 1/(2C): p(1 - p) at p = 1/2 for two
    classes; smaller as probability spreads over more classes).

    Only the conditioning depends on P (the fit is the same convex problem whatever P is), so
    the Gram matrix of the float32 features ``x32`` is summed in float32; its
    eigendecomposition, and P, are float64.
    """
    hessian = (x32.T @ x32).double() * (0.5 / num_classes / len(x32))
    hessian.diagonal().add_(2.0 * lam)
    values, vectors = torch.linalg.eigh(hessian)
    values = values.clamp_min(2.0 * lam)
    precond = (vectors * values.rsqrt()) @ vectors.T
    precond_inv = (vectors * values.sqrt()) @ vectors.T
    return precond, precond_inv


def _check_fit(fit: RepresenterFit, target: str, message: str) -> int:
    """The number of training rows of ``fit``, checked to be a fit to ``target``."""
    if not isinstance(fit, RepresenterFit):
        raise TypeError(f"fit: expected a RepresenterFit, got {type(fit).__name__}")
    if fit.target != target:
        raise ValueError(f"fit: {message}, got target={fit.target!r}")
    return len(fit.alpha)


def representer_suspect(fit: RepresenterFit, features: np.ndarray,
                        labels: np.ndarray) -> np.ndarray:
    """Self-influence of each training sample on its own given label, scaled to [0, 1].

    ``alpha_{i,y_i} ||f_i||^2 = (1 - p_{i,y_i}) ||f_i||^2 / (2 lam n)`` (``f`` with the bias
    feature), divided by its maximum; all zeros stay zeros.

    Parameters
    ----------
    fit : a :func:`fit_representer` result (``target="labels"``).
    features : (N, D) float, the features the fit was made on.
    labels : (N,) int, the labels the fit was made on.

    Returns
    -------
    (N,) float32 in [0, 1]; higher = more suspect.
    """
    n = _check_fit(fit, "labels",
                   "representer_suspect needs a fit to the given labels (fit_representer)")
    design = fit.design("features", features, rows=n)
    labels = as_labels("labels", labels, n=n, num_classes=fit.num_classes)
    own = fit.alpha[np.arange(n), labels]
    # with the fit's own labels alpha_{i,y_i} = (1 - p) / (2 lam n) >= 0; < 0 means other labels
    if (own < 0).any():
        row = int(np.flatnonzero(own < 0)[0])
        raise ValueError(f"labels: row {row} differs from the label the fit was made on")
    return _compute_suspect(design, own)


def _compute_suspect(features: np.ndarray, own_alpha: np.ndarray) -> np.ndarray:
    score = own_alpha.astype(np.float64) * np.einsum("nd,nd->n", features, features,
                                                     dtype=np.float64)
    top = score.max()
    return (score / top if top > 0 else np.zeros_like(score)).astype(np.float32)


def trustai_dirty_score(fit: RepresenterFit, features: np.ndarray) -> np.ndarray:
    """TrustAI's "dirty data" score, scaled to [0, 1]; it never looks at the given labels.

    TrustAI (``tutorials/dirty_data_identification/find_dirty_data.py``) ranks training samples
    by ``(number of classes with alpha_ic > 0, sum of those alpha_ic)``, lexicographically, on
    the alphas alone (no feature norm). Because both probability rows sum to 1,
    ``sum_c alpha_ic = 0``, so the positive sum is half of ``sum_c |alpha_ic|``. Here the order is
    kept and mapped into [0, 1] as ``(count - 1 + sum / max sum) / (C - 1)`` (clipped at 0):
    for two classes that is ``|alpha_i0| / max |alpha_0|``.

    Parameters
    ----------
    fit : a :func:`fit_trustai` result (``target="model_probs"``).
    features : (N, D) float, the features the fit was made on; checked against the fit so a fit
        is never scored against another set's rows (the score itself uses only alpha).

    Returns
    -------
    (N,) float32 in [0, 1]; higher = more suspect.
    """
    n = _check_fit(fit, "model_probs", "trustai_dirty_score needs a fit_trustai result")
    fit.design("features", features, rows=n)
    return _compute_dirty(fit.alpha)


def _compute_dirty(alpha: np.ndarray) -> np.ndarray:
    positive = np.clip(alpha.astype(np.float64), 0.0, None)
    count = (positive > 0).sum(axis=1)
    total = positive.sum(axis=1)
    top = total.max()
    share = total / top if top > 0 else np.zeros_like(total)
    return np.clip((count - 1 + share) / (alpha.shape[1] - 1), 0.0, 1.0).astype(np.float32)
