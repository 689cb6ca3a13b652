"""The ranking ``relabeler serve`` re-ranks the waiting tasks with (:mod:`relabeler.plugin.rerank`).

The views ``relabeler score`` combined, computed again with answered labels taken as the
truth: the neighbours' votes with each answered sample voting its answer, and the noise model
with the answered (given, true) pairs counted as known beside the confident joint of the rest.
In head mode (``train/metrics.json`` says so) the model's view follows the answers too: the
final layer is refit on the features (the head's input) with the answered labels, and each
row's probabilities move by the refit's change (``p * p_refit / p_base``, renormalised; the
base refit is on the given labels), so the model's own calibration stays and only what the
answers changed moves. The out-of-fold models', the words' and the training dynamics'
probabilities stay as trained (the words' regression is fitted once, on the given labels, as
``relabeler score`` fitted it), as does the model's in full mode (its encoder learned the given
labels too). With no answers the scores are the stored ones.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping

import numpy as np

from relabeler import artifacts
from relabeler.config import ScoreConfig
from relabeler.jobs.score import TrainView, load_train_view, training_words, voting_views
from relabeler.selectors import lexical, neighbors, noise, rank, representer
from relabeler.selectors.knn import Neighbors, knn
from relabeler.store import RunStore


class LiveRanking:
    """The training rows' views as ``relabeler score`` computed them, ready to be combined
    again with answered labels: the training view (features, probabilities, dynamics), its
    neighbours and the reference probabilities of the noise model, loaded once per score.
    ``head_refit``: refit the final layer with the answers (head mode)."""

    def __init__(self, view: TrainView, neighbours: Neighbors, cfg: ScoreConfig, *,
                 head_refit: bool = False):
        self.view, self.neighbours, self.cfg = view, neighbours, cfg
        self.head_refit = head_refit
        self.ids = view.ids
        self.index = {str(x): i for i, x in enumerate(view.ids)}
        self.reference = view.oof_probs if view.oof_probs is not None else view.probs
        self._base: representer.RepresenterFit | None = None

    @classmethod
    def load(cls, store: RunStore, cfg: ScoreConfig) -> LiveRanking:
        view = load_train_view(store)
        k = min(cfg.k, max(1, len(view.ids) - 1))  # as score chose it
        metrics = (store.read_json(artifacts.METRICS.path)
                   if store.exists(artifacts.METRICS.path) else {})
        return cls(view, knn(view.features, k=k, metric="cosine"), cfg,
                   head_refit=metrics.get("mode") == "head")

    def model_probs(self, labels: np.ndarray) -> np.ndarray:
        """(N, C) the model's probabilities after a refit of the final layer on ``labels``
        (the given ones with the answers in), as the module docstring says; the trained
        model's when the labels are the given ones or ``head_refit`` is off."""
        view = self.view
        if not self.head_refit or np.array_equal(labels, view.labels):
            return view.probs
        fit = {"num_classes": len(view.classes), "lam": self.cfg.representer_lambda}
        if self._base is None:
            self._base = representer.fit_representer(view.features, view.labels, **fit)
        base = self._base
        refit = representer.fit_representer(view.features, labels, **fit,
                                             init_weight=base.weight[:, :-1],
                                             init_bias=base.weight[:, -1])
        ratio = refit.probs.astype(np.float64) / np.maximum(base.probs, 1e-12)
        moved = view.probs * ratio
        return (moved / moved.sum(axis=1, keepdims=True)).astype(np.float32)

    def scores(self, answered: Mapping[str, str]) -> tuple[np.ndarray, noise.NoiseModel | None]:
        """(N,) suspect scores in the view's row order with ``answered`` (sample id -> class)
        taken as the truth, and the noise model they were corrected by (None: ``none``)."""
        view, classes = self.view, list(self.view.classes)
        known = [(self.index[s], classes.index(c)) for s, c in answered.items()
                 if s in self.index and c in classes]
        rows = np.array([r for r, _ in known], dtype=np.int64)
        truth = np.array([c for _, c in known], dtype=np.int64)
        labels = view.labels.copy()
        labels[rows] = truth
        knn_dist = neighbors.neighbor_label_distribution(self.neighbours, labels, len(classes))
        noise_model = None
        if self.cfg.noise_model != "none":
            unanswered = np.ones(len(labels), dtype=bool)
            unanswered[rows] = False
            joint = noise.confident_joint(self.reference[unanswered], view.labels[unanswered],
                                          len(classes))
            np.add.at(joint, (view.labels[rows], truth), 1.0)
            noise_model = noise.noise_model_from_joint(joint, kind=self.cfg.noise_model)
        if self.head_refit and len(rows):
            view = copy.copy(view)  # the same view, the model's probabilities refit
            view.probs = self.model_probs(labels)
        words = self.words if lexical.words_vote(noise_model) else None
        views, _ = voting_views(view, knn_dist, noise_model, words)
        return rank.combine(views), noise_model

    @functools.cached_property
    def words(self) -> np.ndarray | None:
        """The words' view as ``relabeler score`` made it, fitted at the first re-rank that
        can use it and kept after."""
        return training_words(self.view, self.cfg)
