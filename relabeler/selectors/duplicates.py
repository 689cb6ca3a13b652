"""Groups of duplicate texts: exact (after normalising whitespace and case) and near.

Two rows are linked when

* their texts are equal once whitespace runs are collapsed and case is folded (the SHA-1 of
  that form is ``text_hash``), or
* they are near-duplicates: one is among the other's ``k`` nearest neighbours with a cosine
  similarity >= ``threshold`` on the classifier's features (or among its ``k`` nearest by a
  hashed character 3-gram sketch of the text, :func:`text_sketch`), AND their texts agree by
  :func:`text_similarity` >= ``text_threshold``. The text check keeps two different texts that
  the model happens to embed alike (fine-tuned features collapse a class into a tight cluster)
  from being called duplicates; the sketch finds the light edits of short texts that move the
  features far (one word of an SMS changed: median cosine 0.85 on MiniLM).

Rows of one normalised text always share a group. Near-duplicate groups are stars, not chains:
the text with the most near-duplicate links (then the most rows, then the first row) leads a
group of itself and its linked texts not yet in one, and so on down. Every member of a group is
a confirmed near-duplicate of its leader, or (a text whose links all went to other stars, alike
to none of their leaders) of one of its members; the connected components of the links would put the
two ends of a chain of light edits together (16 texts a word apart, first and last 0.31 alike;
15% of the distinct-text pairs inside sms-spam's components failed the text check). Neighbours
come from :func:`relabeler.selectors.knn.knn` (k per row): the cost is that of the kNN, never an
N x N matrix. Rows of several splits go in together, which is how leakage (an eval row in a
group with a training row) is found.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from types import SimpleNamespace

import numpy as np

from relabeler.selectors._checks import as_matrix
from relabeler.selectors.knn import knn, unit_rows
from relabeler.selectors.text_units import SINGLE_UNIT_RANGES

#: default bar of :func:`text_similarity` for a near-duplicate (see its docstring)
TEXT_THRESHOLD = 0.8
#: from this length (normalised characters) text_similarity compares character 3-gram sets
#: instead of running difflib, whose matching grows with the product of the lengths
LONG_TEXT = 1000
#: width of :func:`text_sketch` and the sketch cosine from which its neighbours are checked
SKETCH_DIM = 1024
SKETCH_FLOOR = 0.7
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing of a 3-gram's code
_PUNCTUATION = re.compile(r"[^\w\s]+")
_CJK = re.compile(rf"[{SINGLE_UNIT_RANGES}]")
#: a run of punctuation that touches a CJK ideograph or kana on either side
_CJK_PUNCTUATION = re.compile(
    rf"(?<=[{SINGLE_UNIT_RANGES}])[^\w\s]+|[^\w\s]+(?=[{SINGLE_UNIT_RANGES}])")
#: whitespace between two CJK ideographs or kana
_CJK_SPACE = re.compile(rf"(?<=[{SINGLE_UNIT_RANGES}])\s+(?=[{SINGLE_UNIT_RANGES}])")


def normalize_text(text: str) -> str:
    """The text with whitespace runs collapsed to one space, trimmed and case-folded."""
    return " ".join(str(text).split()).casefold()


def text_hash(texts) -> np.ndarray:
    """(N,) object array of 16-hex-digit SHA-1 prefixes of :func:`normalize_text`: equal
    exactly for texts that differ only in whitespace and case."""
    return np.array([hashlib.sha1(normalize_text(t).encode("utf-8")).hexdigest()[:16]
                     for t in texts], dtype=object)


def _comparable(text: str) -> str:
    # punctuation is a light edit: it counts as a word break, never as a difference
    text = unicodedata.normalize("NFKC", text)
    if not _CJK.search(text):
        return " ".join(_PUNCTUATION.sub(" ", text).split()).casefold()
    # Chinese and Japanese have no spaces between words: a mark made a space there would be a
    # difference that the copy without the mark lacks (its character 3-grams change), so a
    # mark beside such a character goes, and so does a space between two of them
    text = " ".join(_PUNCTUATION.sub(" ", _CJK_PUNCTUATION.sub("", text)).split())
    return _CJK_SPACE.sub("", text).casefold()


def confirm_pairs(texts: Sequence[str], lo: np.ndarray, hi: np.ndarray,
                  threshold: float) -> np.ndarray:
    """(P,) bool: whether the texts of each pair (rows ``lo[p]``, ``hi[p]``) are at least
    ``threshold`` alike by :func:`text_similarity` (cheap bounds first; each row's forms and
    3-grams computed once, each pair of forms compared once)."""
    return TextChecks().confirm(texts, lo, hi, threshold)


class TextChecks:
    """The text check's answers of one run, so that each pair of texts is compared once.

    The duplicate-conflict signal and the duplicate groups of ``relabeler score`` check many of
    the same pairs (at 20,000 SMS every pair of the signal's was among the groups' 307,502), and
    the check is most of the stage's time. A pair's answer depends only on the two texts'
    normalised forms (equal: alike) and comparable forms (their similarity), so answers are
    kept by the pair of comparable forms, in the order given (difflib's ratio is not
    symmetric), and the threshold: rows of one text, or of texts that differ only in case,
    whitespace or punctuation, share them. They are kept in sorted int64 arrays, about 9 bytes
    a pair.
    """

    def __init__(self) -> None:
        self._form_id: dict[str, int] = {}  # normalised and comparable forms alike
        self._forms: list[str] = []
        self._known: dict[float, tuple[np.ndarray, np.ndarray]] = {}
        self._cache = _Cache()

    def _ids(self, forms) -> np.ndarray:
        ids = []
        for form in forms:
            if form not in self._form_id:
                self._form_id[form] = len(self._forms)
                self._forms.append(form)
            ids.append(self._form_id[form])
        return np.array(ids, dtype=np.int64)

    def confirm(self, texts: Sequence[str], lo: np.ndarray, hi: np.ndarray,
                threshold: float) -> np.ndarray:
        """As :func:`confirm_pairs`, comparing only the pairs of forms not compared yet."""
        lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
        if not len(lo):
            return np.zeros(0, dtype=bool)
        threshold = float(threshold)
        rows = np.union1d(lo, hi)
        row_texts = [texts[row] for row in rows.tolist()]
        normal = self._ids(normalize_text(t) for t in row_texts)
        comparable = self._ids(_comparable(t) for t in row_texts)
        a, b = np.searchsorted(rows, lo), np.searchsorted(rows, hi)
        out = normal[a] == normal[b]  # texts equal but for whitespace and case
        ask = np.flatnonzero(~out)
        key = (comparable[a[ask]] << 32) | comparable[b[ask]]
        keys, answers = self._known.get(threshold, (np.zeros(0, np.int64), np.zeros(0, bool)))
        at = np.minimum(np.searchsorted(keys, key), max(len(keys) - 1, 0))
        known = keys[at] == key if len(keys) else np.zeros(len(key), dtype=bool)
        out[ask[known]] = answers[at[known]]
        new_keys, inverse = np.unique(key[~known], return_inverse=True)
        if len(new_keys):
            forms = self._forms
            new_answers = np.array(
                [_similarity(forms[x], forms[y], threshold, self._cache) >= threshold
                 for x, y in zip((new_keys >> 32).tolist(),
                                 (new_keys & 0xFFFFFFFF).tolist(), strict=True)], dtype=bool)
            out[ask[~known]] = new_answers[inverse]
            keys = np.concatenate([keys, new_keys])
            answers = np.concatenate([answers, new_answers])
            order = np.argsort(keys, kind="stable")
            self._known[threshold] = keys[order], answers[order]
        return out


def _trigrams(text: str) -> set[str]:
    return {text[i:i + 3] for i in range(max(len(text) - 2, 1))}


def text_similarity(a: str, b: str) -> float:
    """How much of two texts agrees, in [0, 1], ignoring case, whitespace and punctuation.

    difflib's ratio (2 x matched characters / total characters) of the two texts with
    punctuation turned into word breaks; when either is longer than :data:`LONG_TEXT`
    characters, the Jaccard similarity of their character 3-gram sets (linear in the length,
    and for a small edit of a long text about as high as the ratio). Both are 1 for equal texts,
    and 0 where either text has nothing but punctuation, emoji or marks (":)" and ":(" are not
    one text; texts equal but for whitespace and case are 1). One word changed in a sentence of
    six words keeps about 0.85; two different texts of the same topic rarely pass 0.6.
    """
    if normalize_text(a) == normalize_text(b):
        return 1.0
    return _similarity(_comparable(a), _comparable(b), 0.0)


def _letter_counts(text: str) -> Counter:
    return Counter(text)


def _positions(text: str) -> dict[str, int]:
    """Each character of ``text`` -> the bit mask of where it occurs (bit i: position i)."""
    masks: dict[str, int] = {}
    for i, char in enumerate(text):
        masks[char] = masks.get(char, 0) | (1 << i)
    return masks


def _common_subsequence(x: str, y: str, positions: dict[str, int]) -> int:
    """The length of the longest common subsequence of ``x`` and ``y`` (``positions``:
    :func:`_positions` of ``y``), by the bit-parallel recurrence of Hyyro (2004): one pass
    over ``x`` of integer operations on len(y)-bit numbers."""
    full = (1 << len(y)) - 1
    v = full
    for char in x:
        u = v & positions.get(char, 0)
        v = ((v + u) | (v - u)) & full
    return len(y) - v.bit_count()


class _Cache:
    """Per-text work of :func:`_similarity` kept for texts compared many times (a text is in
    about 15 candidate pairs): 3-gram sets, letter counts and position masks."""

    def __init__(self, size: int = 4096) -> None:
        self.trigrams = functools.lru_cache(maxsize=size)(_trigrams)
        self.letters = functools.lru_cache(maxsize=size)(_letter_counts)
        self.positions = functools.lru_cache(maxsize=size)(_positions)


_NO_CACHE = SimpleNamespace(trigrams=_trigrams, letters=_letter_counts, positions=_positions)


def _similarity(x: str, y: str, bar: float, cache=_NO_CACHE) -> float:
    """text_similarity of comparable forms; below ``bar`` it may return any value < bar (an
    upper bound that already fails). ``cache``: a :class:`_Cache` for texts met again."""
    if not x or not y:  # nothing but punctuation, emoji or marks: only an exact copy counts
        return 0.0
    if x == y:
        return 1.0
    if max(len(x), len(y)) > LONG_TEXT:
        gx, gy = cache.trigrams(x), cache.trigrams(y)
        return len(gx & gy) / len(gx | gy)
    # upper bounds of difflib's ratio (2 x matched characters / total characters), cheapest
    # first, so that most pairs that fail never build difflib's matcher: its real_quick_ratio
    # (the shorter length) and quick_ratio (the characters in common, order aside), computed
    # as difflib computes them; then the longest common subsequence, since difflib's matched
    # blocks lie in order in both texts and so are a common subsequence. Below the bar, the
    # ratio is too: the decisions are difflib's own.
    total = len(x) + len(y)
    value = 2.0 * min(len(x), len(y)) / total
    if value < bar:
        return value
    value = 2.0 * (cache.letters(x) & cache.letters(y)).total() / total
    if value < bar:
        return value
    value = 2.0 * _common_subsequence(x, y, cache.positions(y)) / total
    if value < bar:
        return value
    return SequenceMatcher(None, x, y, autojunk=False).ratio()


@dataclass(frozen=True)
class DuplicateGroups:
    """Duplicate groups of N rows.

    group : (N,) int64 group id, 0.. in order of each group's first row; -1 for a row without
        a duplicate.
    similarity : (N,) float32, the row's strongest link in its group: 1.0 to an exact
        duplicate, else the feature cosine of its most similar confirmed near-duplicate there
        (a pair the text sketch proposed may lie below ``threshold``); NaN outside groups.
    text_hash : (N,) object, see :func:`text_hash`.
    exact : (N,) bool, the row has an exact duplicate (same ``text_hash``).
    n_candidates : near-duplicate pairs the kNN searches proposed (texts not equal).
    n_rejected : of those, pairs the text check turned down.
    """

    group: np.ndarray
    similarity: np.ndarray
    text_hash: np.ndarray
    exact: np.ndarray
    n_candidates: int
    n_rejected: int

    @property
    def n_groups(self) -> int:
        return int(self.group.max()) + 1 if len(self.group) else 0


def find_duplicates(features: np.ndarray, texts, *, threshold: float = 0.98,
                    text_threshold: float = TEXT_THRESHOLD, k: int = 10,
                    text_neighbors: bool = True, checks: TextChecks | None = None
                    ) -> DuplicateGroups:
    """Exact and near-duplicate groups among N rows.

    Parameters
    ----------
    features : (N, D) float classifier features (cosine similarity is taken on them).
    texts : N strings, row-aligned with ``features``.
    threshold : cosine similarity in (0, 1] from which two rows are near-duplicate candidates.
    text_threshold : :func:`text_similarity` in (0, 1] a candidate pair must reach.
    k : neighbours looked at per row (in each search); a text with more than ``k``
        near-duplicates may lead one group and sit in another's.
    text_neighbors : also propose each row's ``k`` nearest rows by :func:`text_sketch` (cosine
        >= :data:`SKETCH_FLOOR`). Model features move more than the text under a light edit
        of a short text (one word of an SMS changed: median cosine 0.85 on MiniLM), so the
        features alone miss most such pairs; the text check decides either way.
    checks : answers of the text check kept from earlier calls of the same run (they are
        read and added to); the groups are the same with or without.

    Returns
    -------
    DuplicateGroups

    Raises
    ------
    ValueError
        Features not (N, D) or not finite, texts not N long, a threshold outside (0, 1], k < 1.
    """
    features = as_matrix("features", features)
    texts = [str(t) for t in texts]
    if len(texts) != len(features):
        raise ValueError(f"texts: expected {len(features)} texts to match features of shape "
                         f"{features.shape}, got {len(texts)}")
    for name, value in (("threshold", threshold), ("text_threshold", text_threshold)):
        if not 0.0 < float(value) <= 1.0:
            raise ValueError(f"{name}: expected a similarity in (0, 1], got {value}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: expected an int >= 1, got {k!r}")
    return _compute_groups(features, texts, float(threshold), float(text_threshold), int(k),
                           bool(text_neighbors), checks or TextChecks())


def text_sketch(texts, *, dim: int = SKETCH_DIM) -> np.ndarray:
    """(N, dim) float32 unit vectors: the character 3-grams of each comparable text (case,
    whitespace and punctuation aside), hashed into ``dim`` buckets, present or not, weighted
    by their inverse document frequency among the N texts. Two texts that share most of their
    characters in order are close, whatever a model makes of them; the weighting keeps the
    3-grams every English text has ("the", "ing") from making unrelated texts close."""
    rows, buckets = [], []
    for row, text in enumerate(texts):
        codes = np.frombuffer(_comparable(text).encode("utf-32-le"), dtype=np.uint32)
        codes = np.concatenate([codes, np.zeros(max(0, 3 - len(codes)), np.uint32)])
        codes = codes.astype(np.uint64)
        grams = (codes[:-2] * 1_000_003 + codes[1:-1]) * 1_000_003 + codes[2:]
        hashed = np.unique((grams * _GOLDEN >> np.uint64(40)) % np.uint64(dim))
        rows.append(np.full(len(hashed), row, dtype=np.int64))
        buckets.append(hashed.astype(np.int64))
    out = np.zeros((len(texts), dim), dtype=np.float32)
    if rows:
        out[np.concatenate(rows), np.concatenate(buckets)] = 1.0
    out *= (np.log((1.0 + len(texts)) / (1.0 + out.sum(axis=0))) + 1.0).astype(np.float32)
    out /= np.maximum(np.sqrt(np.einsum("ij,ij->i", out, out)), 1e-12)[:, None]
    return out


def _pairs(indices: np.ndarray, scores: np.ndarray, floor: float, text_id: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Unordered row pairs (lo < hi) among the neighbours scoring >= floor whose texts are
    not equal already."""
    rows = np.repeat(np.arange(len(indices)), indices.shape[1])
    cols, sims = indices.ravel(), scores.ravel()
    keep = (cols >= 0) & (sims >= floor)
    rows, cols = rows[keep], cols[keep]
    keep = text_id[rows] != text_id[cols]
    rows, cols = rows[keep], cols[keep]
    return np.minimum(rows, cols), np.maximum(rows, cols)


def _compute_groups(features: np.ndarray, texts: list[str], threshold: float,
                    text_threshold: float, k: int, text_neighbors: bool, checks: TextChecks
                    ) -> DuplicateGroups:
    n = len(texts)
    hashes = text_hash(texts)
    # exact duplicates: one text, the rows of one hash (``inverse``), led by its first row
    _, first, inverse = np.unique(hashes.astype(str), return_index=True, return_inverse=True)
    exact = np.bincount(inverse, minlength=len(first))[inverse] > 1
    near_src, near_dst, near_sim = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    n_candidates = n_rejected = 0
    if n >= 2:
        k = min(k, n - 1)
        nb = knn(features, k=k)
        lo, hi = _pairs(nb.indices, nb.scores, threshold, inverse)
        if text_neighbors:
            # the sketch is scaled to unit rows where it lies: one (N, 1024) copy less
            sketch = knn(text_sketch(texts), k=k, overwrite=True)
            t_lo, t_hi = _pairs(sketch.indices, sketch.scores, SKETCH_FLOOR, inverse)
            lo, hi = np.concatenate([lo, t_lo]), np.concatenate([hi, t_hi])
        pair_id = np.unique(lo.astype(np.int64) * n + hi)
        lo, hi = pair_id // n, pair_id % n
        n_candidates = len(lo)
        confirmed = checks.confirm(texts, lo, hi, text_threshold)
        n_rejected = int(n_candidates - confirmed.sum())
        near_src, near_dst = lo[confirmed], hi[confirmed]
        unit = unit_rows(features)
        near_sim = np.einsum("ij,ij->i", unit[near_src], unit[near_dst])
    leader = _star_leaders(
        inverse[near_src], inverse[near_dst], len(first),
        np.bincount(inverse, minlength=len(first)), first,
        lambda v, leaders: checks.confirm(texts, np.full(len(leaders), first[v]),
                                          first[leaders], text_threshold))
    component = leader[inverse]
    sizes = np.bincount(component, minlength=len(first))
    in_group = sizes[component] > 1
    # group ids in order of each group's first row
    group = np.full(n, -1, dtype=np.int64)
    grouped_rows = np.flatnonzero(in_group)
    if len(grouped_rows):
        firsts = np.unique(component[grouped_rows], return_index=True)[1]
        first_rows = np.sort(grouped_rows[firsts])
        renumber = np.full(len(first), -1, dtype=np.int64)
        renumber[component[first_rows]] = np.arange(len(first_rows))
        group[grouped_rows] = renumber[component[grouped_rows]]
    similarity = np.full(n, np.nan, dtype=np.float32)
    similarity[exact] = 1.0
    inside = component[near_src] == component[near_dst]  # links across two stars do not count
    near_src, near_dst, near_sim = near_src[inside], near_dst[inside], near_sim[inside]
    best = np.full(n, -np.inf, dtype=np.float32)
    np.maximum.at(best, near_src, near_sim.astype(np.float32))
    np.maximum.at(best, near_dst, near_sim.astype(np.float32))
    linked = ~exact & np.isfinite(best)
    similarity[linked] = best[linked]
    return DuplicateGroups(group=group, similarity=similarity, text_hash=hashes, exact=exact,
                           n_candidates=int(n_candidates), n_rejected=int(n_rejected))


def _star_leaders(a: np.ndarray, b: np.ndarray, m: int, rows: np.ndarray, first: np.ndarray,
                  alike: Callable[[int, np.ndarray], np.ndarray]) -> np.ndarray:
    """(m,) the leader of each of ``m`` texts given the near-duplicate links ``a[i]`` -
    ``b[i]`` between texts: in order of links (most first), rows (most first) and first row,
    a text not yet led leads itself and its linked texts not yet led. A text left alone whose
    linked texts all joined other stars joins the largest of those stars whose leader it is
    alike to (``alike(text, leaders)``: bool per leader, the text check), else the largest of
    them: a link to a member, two edits from its leader. A text without links leads itself
    alone."""
    leader = np.arange(m, dtype=np.int64)
    if not len(a):
        return leader
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = np.unique(lo.astype(np.int64) * m + hi)
    lo, hi = key // m, key % m
    ends = np.concatenate([lo, hi])
    other = np.concatenate([hi, lo])
    by_end = np.argsort(ends, kind="stable")
    ends, other = ends[by_end], other[by_end]
    degree = np.bincount(ends, minlength=m)
    start = np.concatenate([[0], np.cumsum(degree)])
    linked = np.flatnonzero(degree)
    order = linked[np.lexsort((first[linked], -rows[linked], -degree[linked]))]
    led = np.zeros(m, dtype=bool)
    for v in order.tolist():
        if led[v]:
            continue
        led[v] = True
        mates = other[start[v]:start[v + 1]]
        mates = mates[~led[mates]]
        leader[mates] = v
        led[mates] = True
    members = np.bincount(leader, minlength=m)
    for v in order.tolist():
        if leader[v] != v or members[v] > 1:
            continue
        leaders = np.unique(leader[other[start[v]:start[v + 1]]])
        leaders = leaders[leaders != v]
        if not len(leaders):
            continue
        leaders = leaders[np.argsort(-members[leaders], kind="stable")]
        ok = np.flatnonzero(alike(v, leaders))
        # alike to no leader: the largest star it is linked into all the same (a confirmed
        # near-duplicate left in no group would hide a leak)
        joined = leaders[ok[0]] if len(ok) else leaders[0]
        leader[v] = joined
        members[joined] += 1
        members[v] -= 1
    return leader


def group_label_conflicts(group: np.ndarray, labels) -> np.ndarray:
    """(N,) bool: the row's group holds two or more different labels (None/NaN labels, as in
    the pool, do not count). ``group`` as in :class:`DuplicateGroups` (-1 = no group)."""
    group = np.asarray(group, dtype=np.int64)
    labels = np.asarray(labels, dtype=object)
    if group.shape != labels.shape or group.ndim != 1:
        raise ValueError(f"group and labels: expected equal (N,) shapes, got {group.shape} and "
                         f"{labels.shape}")
    seen: dict[int, set] = {}
    for g, label in zip(group.tolist(), labels.tolist(), strict=True):
        if g >= 0 and label is not None and label == label:  # NaN != NaN
            seen.setdefault(g, set()).add(label)
    conflicted = {g for g, values in seen.items() if len(values) > 1}
    return np.array([g in conflicted for g in group.tolist()], dtype=bool)
