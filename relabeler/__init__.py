"""relabeler: find the wrong labels and thin spots in a text classifier's training data."""

__version__ = "0.1.0"
