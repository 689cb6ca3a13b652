"""The detectors: numpy and torch in, scores out."""

import logging

# faiss tells at INFO which CPU build it loaded, and that the AVX512 one is absent ("Could not
# load library ... ModuleNotFoundError"): it reads like an error, and is not. Quiet unless the
# caller set that logger's level.
if logging.getLogger("faiss.loader").level == logging.NOTSET:
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
