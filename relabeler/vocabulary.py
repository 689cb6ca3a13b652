"""How much of a corpus a model's vocabulary reads: the share of unknown tokens, and the words
it reads as unknown (an English vocabulary reads most of a Chinese corpus as ``[UNK]``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UnknownTokens:
    """How much of some texts a tokenizer reads as its unknown token ([UNK]): ``share`` of
    the ``n_tokens`` tokens of ``n_texts`` texts, and the words or characters it could not
    read with their counts, most frequent first (``top``)."""

    share: float
    n_tokens: int
    n_texts: int
    top: list[tuple[str, int]]


def unknown_tokens(tokenizer, texts: Sequence[str], *, sample: int = 2000, top: int = 5,
                   seed: int = 0, batch_size: int = 256,
                   max_length: int = 512) -> UnknownTokens:
    """The unknown-token share of ``texts`` under ``tokenizer`` (a fast one: the offsets name
    what was unknown), on a random ``sample`` of them (all when fewer) and their first
    ``max_length`` tokens. A tokenizer without an unknown token (byte-level BPE) reads all."""
    from collections import Counter

    texts = list(texts)
    if len(texts) > sample:
        rows = np.sort(np.random.default_rng(seed).choice(len(texts), sample, replace=False))
        texts = [texts[i] for i in rows]
    unk = tokenizer.unk_token_id
    n_tokens, missing = 0, Counter()
    for start in range(0, len(texts), batch_size):
        batch = [t or "" for t in texts[start:start + batch_size]]
        encoded = tokenizer(batch, add_special_tokens=False, truncation=True,
                            max_length=max_length, return_offsets_mapping=True)
        for text, ids, offsets in zip(batch, encoded["input_ids"], encoded["offset_mapping"],
                                      strict=True):
            n_tokens += len(ids)
            if unk is not None:
                missing.update(text[a:b] for i, (a, b) in zip(ids, offsets, strict=True)
                               if i == unk)
    share = sum(missing.values()) / n_tokens if n_tokens else 0.0
    return UnknownTokens(share=share, n_tokens=n_tokens, n_texts=len(texts),
                         top=missing.most_common(top))
