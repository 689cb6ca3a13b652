"""The cleanlab functions relabeler calls, imported with the process's warning filters kept.

cleanlab 2.9's package import runs ``warnings.filterwarnings("ignore")``
(``cleanlab/datalab/internal/spurious_correlation.py``): imported plainly, it silences every
warning of the process it enters, a notebook's own pandas and numpy warnings included. Import
cleanlab through this module (its first import is the one that counts).
"""

import warnings

with warnings.catch_warnings():
    from cleanlab.count import compute_confident_joint
    from cleanlab.filter import find_label_issues
    from cleanlab.multiannotator import (
        get_active_learning_scores,
        get_label_quality_multiannotator,
        get_majority_vote_label,
    )
    from cleanlab.rank import (
        get_label_quality_scores,
        get_normalized_margin_for_each_label,
        get_self_confidence_for_each_label,
    )

__all__ = ["compute_confident_joint", "find_label_issues", "get_active_learning_scores",
           "get_label_quality_multiannotator", "get_label_quality_scores",
           "get_majority_vote_label", "get_normalized_margin_for_each_label",
           "get_self_confidence_for_each_label"]
