"""The ranking ``relabeler serve`` re-ranks the waiting tasks with (:mod:`relabeler.plugin.rerank`).

The views ``relabeler score`` combined, computed again with answered labels taken as the
truth: the neighbours' votes with each answered sample voting its answer, and the noise model
with the answered (given, true) pairs counted as known beside the confident joint of the rest.
The model's, the out-of-fold models' and the training dynamics' probabilities stay as trained.
With no answers the scores are the stored ones.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from relabeler.config import ScoreConfig
from relabeler.jobs.score import TrainView, load_train_view, voting_views
from relabeler.selectors import neighbors, noise, rank
from relabeler.selectors.knn import Neighbors, knn
from relabeler.store import RunStore


class LiveRanking:
    """The training rows' views as ``relabeler score`` computed them, ready to be combined
    again with answered labels: the training view (features, probabilities, dynamics), its
    neighbours and the reference probabilities of the noise model, loaded once per score."""

    def __init__(self, view: TrainView, neighbours: Neighbors, cfg: ScoreConfig):
        self.view, self.neighbours, self.cfg = view, neighbours, cfg
        self.ids = view.ids
        self.index = {str(x): i for i, x in enumerate(view.ids)}
        self.reference = view.oof_probs if view.oof_probs is not None else view.probs

    @classmethod
    def load(cls, store: RunStore, cfg: ScoreConfig) -> LiveRanking:
        view = load_train_view(store)
        k = min(cfg.k, max(1, len(view.ids) - 1))  # as score chose it
        return cls(view, knn(view.features, k=k, metric="cosine"), cfg)

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
        views, _ = voting_views(view, knn_dist, noise_model)
        return rank.combine(views), noise_model
