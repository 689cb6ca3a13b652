"""``relabeler simulate --shortcut TOKEN:CLASS:RATE``: plant a shortcut, see whether score finds it.

After ``data`` and before ``train``, TOKEN is inserted at a random word position into RATE of the
training texts labelled CLASS (and into no other text; a TOKEN that already occurs in a training
text is refused; in Chinese or Japanese text it may go between two characters); those rows get
``shortcut = True``. After ``score``, the ``"shortcut"`` block of ``simulation.json`` says where
TOKEN ranks in ``scores/shortcuts.parquet`` (1 = top; null when it did not pass the
significance threshold) and what the shortcut costs: eval accuracy of the head refit with and
without the token, on the eval split and on an anti-shortcut copy that carries the token in
every other class's text, and of the head refit on the planted texts with each mitigation of
:mod:`relabeler.debias` against the shortcut tokens score found (``"mitigated"``: the default
one, ``[train] debias`` when set, else :data:`relabeler.debias.DEFAULT_MITIGATION`).
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from relabeler import artifacts
from relabeler.errors import ConfigError
from relabeler.redact import mask_url
from relabeler.selectors.shortcuts import contains_token, word_tokens
from relabeler.selectors.text_units import UNIT, is_single_unit
from relabeler.store import RunStore

log = logging.getLogger(__name__)

STAGE = "simulate.shortcut"
FLAG = "--shortcut"


@dataclass(frozen=True)
class ShortcutSpec:
    """What to plant: ``token`` into ``rate`` of the training texts of ``label``."""

    token: str
    label: str
    rate: float

    @property
    def key(self) -> str:
        """The token as ``scores/shortcuts.parquet`` names it (lowercase words, one space)."""
        return " ".join(word_tokens(self.token))


def parse_shortcut(spec: str) -> ShortcutSpec:
    """``TOKEN:CLASS:RATE`` (CLASS may contain ':'); ConfigError naming the flag otherwise."""
    token, sep, rest = spec.partition(":")
    label, sep2, rate_text = rest.rpartition(":")
    if not (sep and sep2 and token and label):
        raise ConfigError(f"{FLAG}: expected TOKEN:CLASS:RATE, got {spec!r}")
    try:
        rate = float(rate_text)
    except ValueError:
        raise ConfigError(f"{FLAG}: RATE must be a number in (0, 1], got {rate_text!r}") \
            from None
    if not 0 < rate <= 1:
        raise ConfigError(f"{FLAG}: RATE must lie in (0, 1], got {rate}")
    words = word_tokens(token)
    if not 1 <= len(words) <= 2:
        raise ConfigError(f"{FLAG}: TOKEN must be one or two words (letters, digits, _; each "
                          f"Chinese or Japanese character is a word), got {token!r}")
    return ShortcutSpec(token=token, label=label, rate=rate)


def check_model_reads(spec: ShortcutSpec, model_name: str | None) -> None:
    """Refuse a TOKEN that the run's model (``model_name``; None: the packaged MiniLM) reads,
    wholly or in part, as its unknown token ([UNK]). Any [UNK] is refused, not only a token
    that is all [UNK]: [UNK] stands for every character the vocabulary lacks, so the model
    cannot tell that part of the token from the other unknown characters of the texts, and
    the simulation would measure a token the model only partly sees (score, which counts
    words, still finds the whole token). Raises ConfigError naming the flag, the unknown
    part and tokens the vocabulary holds."""
    from relabeler.model import load_tokenizer

    tokenizer = load_tokenizer(model_name)
    unk = tokenizer.unk_token_id
    if unk is None:  # a byte-level vocabulary reads every character
        return
    encoded = tokenizer(spec.token, add_special_tokens=False, return_offsets_mapping=True)
    unknown = [spec.token[a:b] for i, (a, b) in zip(encoded["input_ids"],
                                                    encoded["offset_mapping"], strict=True)
               if i == unk]
    if not unknown:
        return
    known = _known_tokens(tokenizer, spec.token)
    instead = (f"pick a token that its vocabulary holds and no training text contains (such as "
               f"{' or '.join(map(repr, known))}), or " if known else "")
    model = (f"the model {mask_url(str(model_name))}"
             if str(model_name or "") not in ("", "default", "minilm") else "the packaged MiniLM")
    raise ConfigError(
        f"{FLAG}: {model} reads {', '.join(map(repr, unknown))} of the token {spec.token!r} "
        f"as unknown ([UNK]), as it reads every character its vocabulary lacks, so it cannot "
        f"see the planted token and the simulation would measure nothing; {instead}set "
        f"model.name to a model whose vocabulary covers the script (for Chinese or Japanese a "
        f"Chinese or multilingual BERT-family checkpoint, e.g. bert-base-chinese or "
        f"bert-base-multilingual-cased)")


def _known_tokens(tokenizer, token: str, n: int = 3) -> list[str]:
    """Up to ``n`` tokens the tokenizer's vocabulary holds, written like ``token``: as many
    Chinese or Japanese characters as it has where it has any, else whole words of letters.
    They are spread over the vocabulary (its order is no frequency)."""
    vocab = tokenizer.get_vocab()
    units = [u for u in word_tokens(token) if is_single_unit(u)]
    if units:
        size, kana = len(units), _is_kana(units[0])
        chars = sorted(k for k in vocab if len(k) == 1 and is_single_unit(k)
                       and _is_kana(k) == kana)  # the script of the token: ideographs or kana
        if len(chars) < size:
            return []
        step = max(1, len(chars) // (n + 1))
        picks = [chars[i:i + size] for i in range(step, len(chars) - size + 1, step)][:n]
        return ["".join(p) for p in picks if len(p) == size]
    words = sorted(k for k in vocab if len(k) >= 5 and k.isascii() and k.isalpha())
    step = max(1, len(words) // (n + 1))
    return words[step::step][:n]


def _is_kana(char: str) -> bool:
    return unicodedata.name(char, "").startswith(("HIRAGANA", "KATAKANA", "HALFWIDTH KATAKANA"))


def check_planted(store: RunStore, spec: ShortcutSpec | None) -> bool:
    """Whether ``spec`` is still to be planted into an existing run (so the stages after
    ``data`` must run again). Raises when the run holds another plant than ``spec``."""
    info = (store.stage_info(STAGE) or {}).get("info") if store.stage_done(STAGE) else None
    wanted = None if spec is None else {"token": spec.token, "class": spec.label,
                                        "rate": spec.rate}
    held = None if info is None else {k: info[k] for k in ("token", "class", "rate")}
    if held is not None and held != wanted:
        raise ConfigError(f"{FLAG}: the run in {store.uri} was made with --shortcut "
                          f"{held['token']}:{held['class']}:{held['rate']}; use --force or "
                          f"another --out")
    return spec is not None and held is None


def insert_token(texts: list[str], rows: np.ndarray, token: str,
                 rng: np.random.Generator) -> list[str]:
    """``texts`` with ``token`` inserted at a random word position of each row in ``rows``.

    Text with Chinese or Japanese characters, which need no spaces between words, takes it
    between any two of those characters too (else it could only go at the ends of a clause),
    with a space only where it would otherwise run into a neighbouring word ("iPhone zq手机").
    """
    out = list(texts)
    for row in rows.tolist():
        words = out[row].split()
        if not _has_single_units(out[row]):
            words.insert(int(rng.integers(len(words) + 1)), token)
            out[row] = " ".join(words)
            continue
        # (word, offset): 0 = before the word (a space boundary), else between two characters
        # of the word one of which is a unit of its own
        slots = [(j, k) for j, word in enumerate(words) for k in range(len(word))
                 if k == 0 or is_single_unit(word[k - 1]) or is_single_unit(word[k])]
        slots.append((len(words), 0))
        j, k = slots[int(rng.integers(len(slots)))]
        # before a word or at the end: joined to its Chinese or Japanese neighbour without a
        # space, as between two characters (a space is kept where the two would run together)
        if k == 0 and j < len(words) and not _space_between(token[-1], words[j][0]):
            words[j] = token + words[j]
        elif k == 0 and j == len(words) and words and not _space_between(words[-1][-1],
                                                                         token[0]):
            words[-1] += token
        elif k == 0:
            words.insert(j, token)
        else:
            left, right = words[j][:k], words[j][k:]
            words[j] = (left + _space_between(left[-1], token[0]) + token
                        + _space_between(token[-1], right[0]) + right)
        out[row] = " ".join(words)
    return out


def _has_single_units(text: str) -> bool:
    return any(is_single_unit(unit) for unit in word_tokens(text))


def _space_between(left: str, right: str) -> str:
    """" " where the two characters side by side would read as one word, else ""."""
    return " " if UNIT.fullmatch(left + right) else ""


def plant_shortcut(store: RunStore, spec: ShortcutSpec, *, seed: int,
                   force: bool = False) -> dict:
    """Insert the token into ``dataset/train.parquet`` once (a finished plant is kept unless
    ``force``, which goes with a rewritten dataset). Returns the plant's info."""
    if store.stage_done(STAGE) and not force:
        return (store.stage_info(STAGE) or {}).get("info", {})
    table = store.read_table(artifacts.TRAIN.path)
    labels = np.asarray(table.column("label").to_pylist(), dtype=object)
    classes = sorted({x for x in labels.tolist() if x is not None})
    if spec.label not in classes:
        raise ConfigError(f"{FLAG}: class {spec.label!r} is not in the training data "
                          f"(classes: {', '.join(classes)})")
    texts = [t or "" for t in table.column("text").to_pylist()]
    # the planted rows must be the only ones with the token, and removing it (the "clean"
    # texts of shortcut_accuracy) must give back the original texts
    already = np.flatnonzero(contains_token(texts, spec.key))
    if len(already):
        raise ConfigError(f"{FLAG}: the token {spec.token!r} already occurs in {len(already)} "
                          f"training texts (the first: id "
                          f"{table.column('id')[int(already[0])].as_py()!r}); pick a token "
                          f"that occurs in none of them")
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(labels == spec.label)
    n = max(1, int(round(spec.rate * len(candidates))))
    rows = np.sort(rng.choice(candidates, size=n, replace=False))
    texts = insert_token(texts, rows, spec.token, rng)
    planted = np.zeros(table.num_rows, dtype=bool)
    planted[rows] = True
    table = table.set_column(table.column_names.index("text"), "text", pa.array(texts))
    if "shortcut" in table.column_names:
        table = table.drop_columns(["shortcut"])
    store.write_table(artifacts.TRAIN.path, table.append_column("shortcut", pa.array(planted)))
    info = {"token": spec.token, "class": spec.label, "rate": spec.rate, "n_planted": int(n),
            "n_class": int(len(candidates))}
    store.mark_done(STAGE, info)
    log.info("simulate: planted %r into %d of %d %r training texts", spec.token, n,
             len(candidates), spec.label)
    return info


def shortcut_result(store: RunStore, spec: ShortcutSpec, planted: dict) -> dict:
    """The ``"shortcut"`` block of ``simulation.json``: the token's rank among the significant
    (token, class) pairs of ``scores/shortcuts.parquet`` (null when it is not among them)."""
    found = store.read_table(artifacts.SHORTCUTS.path).to_pandas()
    summary = (store.read_json(artifacts.SUMMARY.path).get("shortcuts", {})
               if store.exists(artifacts.SUMMARY.path) else {})
    hit = found[(found["token"] == spec.key) & (found["class"] == spec.label)]
    row = hit.iloc[0] if len(hit) else None
    return {"token": spec.token, "class": spec.label, "rate": spec.rate,
            "n_planted": planted["n_planted"],
            "rank": None if row is None else int(row["rank"]),
            "z": None if row is None else float(row["z"]),
            "n_significant": int(summary.get("n_significant", len(found))),
            "top": found.sort_values("rank")["token"].head(5).tolist()}


def remove_token(text: str, token: str) -> str:
    """``text`` with the first run of whitespace words equal to ``token``'s words removed (a
    two-word token is inserted as one element, so it is found as two words; undoes
    :func:`insert_token` up to whitespace). In text with Chinese or Japanese characters, where
    it may have gone between two characters, the first place its units occur is removed."""
    words, gone = text.split(), token.split()
    for start in range(len(words) - len(gone) + 1):
        if gone and words[start:start + len(gone)] == gone:
            del words[start:start + len(gone)]
            return " ".join(words)
    if _has_single_units(text):
        from relabeler.debias import token_spans

        spans = token_spans(text, token)
        if spans:
            start, end = spans[0]
            return " ".join((text[:start] + text[end:]).split())
    return " ".join(words)


def shortcut_accuracy(store: RunStore, config, spec: ShortcutSpec, *, progress: bool,
                      classes: list[str] | None = None, mode: str | None = None) -> dict:
    """Eval accuracy of the head refit on the training texts with the token (``shortcut``),
    without it (``clean``) and on the planted texts with each mitigation (``reweight``, ``mask``:
    against the first ``[train] debias_top`` tokens of ``scores/shortcuts.parquet``), on the
    eval split and on its anti-shortcut copy (the token inserted into every eval text of the
    other classes). ``"mitigated"`` is the default mitigation's, named by ``"mitigation"``;
    ``"mitigations"`` holds both. ``classes`` and ``mode`` default to the train stage's (a
    benchmark passes them to measure a run that went no further than ``score``'s shortcuts)."""
    from relabeler.data import read_split
    from relabeler.debias import DEFAULT_MITIGATION, mask_tokens, shortcut_tokens, training_weights
    from relabeler.jobs.simulate import _refitter, class_ids, true_labels
    from relabeler.model import load_tokenizer

    train = read_split(store.read_table(artifacts.TRAIN.path))
    evaluation = read_split(store.read_table(artifacts.EVAL.path))
    classes = classes or store.read_json(artifacts.LABELS.path)
    planted = train["text"].tolist()
    clean = [remove_token(t, spec.token) if hit else t
             for t, hit in zip(planted, train["shortcut"], strict=True)]
    labels = class_ids(train["label"], classes, what="the training split")
    tc = config.train
    tokens = shortcut_tokens(store.read_table(artifacts.SHORTCUTS.path).to_pandas(),
                             top=tc.debias_top)
    masked = mask_tokens(planted, tokens, rate=tc.debias_mask_rate,
                         mask=load_tokenizer(config.model.name).mask_token or "", seed=tc.seed)
    weights = training_weights(planted, labels, num_classes=len(classes), debias="reweight",
                               tokens=tokens, class_balance=tc.class_weights,
                               class_names=classes)
    # the eval truth (``label`` holds the flipped eval labels under --eval-noise) both picks the
    # anti-shortcut texts and measures
    eval_truth = true_labels(evaluation)
    rng = np.random.default_rng(config.data.seed + 1)
    other = np.flatnonzero(eval_truth.to_numpy(dtype=object) != spec.label)
    anti = insert_token(evaluation["text"].tolist(), other, spec.token, rng)
    texts = planted + clean + masked + evaluation["text"].tolist() + anti
    refit = _refitter(store, config, texts, classes, progress, mode=mode)
    n, m = len(train), len(evaluation)
    truth = class_ids(eval_truth, classes, what="the eval split")
    test_rows = np.arange(3 * n, 3 * n + 2 * m)
    fits = {"clean": (np.arange(n, 2 * n), None), "shortcut": (np.arange(n), None),
            "reweight": (np.arange(n), weights), "mask": (np.arange(2 * n, 3 * n), None)}
    accuracy, anti_accuracy = {}, {}
    for name, (rows, sample_weights) in fits.items():
        pred = refit.fit_predict(rows, labels, test_rows,
                                 sample_weights=sample_weights).argmax(axis=1)
        accuracy[name] = float(np.mean(pred[:m] == truth))
        anti_accuracy[name] = float(np.mean(pred[m:] == truth))
    mitigation = tc.debias if tc.debias != "none" else DEFAULT_MITIGATION
    mitigations = {name: {"accuracy": accuracy.pop(name),
                          "anti_accuracy": anti_accuracy.pop(name)}
                   for name in ("reweight", "mask")}
    accuracy["mitigated"] = mitigations[mitigation]["accuracy"]
    anti_accuracy["mitigated"] = mitigations[mitigation]["anti_accuracy"]
    return {"accuracy": accuracy, "anti_accuracy": anti_accuracy, "mitigation": mitigation,
            "mitigation_tokens": tokens, "mitigations": mitigations}
