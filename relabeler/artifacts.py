"""The run directory's contract: every artifact, where it lives, who writes it, what it holds.

Stages name artifacts through the constants below, never through path literals, so "what does
score read and write?" has one answer. :meth:`relabeler.store.RunStore.write_table` checks every
table written to a registered path against its schema and fails naming the artifact and the
column; ``docs/architecture.md`` carries :func:`markdown_table` verbatim (a test compares them).

A schema lists the columns every write must have, with their types. ``optional`` columns may be
absent (views that only some settings compute) but are typed when present. Dataset splits keep
the source's other columns (``extra_columns``); no other table may carry unlisted columns.
Types compare by kind: ``string`` and ``large_string`` are one kind, list field names and
fixed-size list widths (the embedding dimension) do not matter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from relabeler.errors import StoreError

Kind = Literal["table", "parts", "json", "jsonl", "folder", "file"]


@dataclass(frozen=True)
class Artifact:
    """One artifact of the run directory.

    path: relative POSIX path; ``{split}``, ``{n}``, ``{name}`` and ``{stage}`` are placeholders.
    kind: ``table`` (one Parquet file), ``parts`` (a folder of ``part-NNNNN.parquet`` read as one
    table), ``json``, ``jsonl`` (a folder of append-only JSON-lines files), ``folder``, ``file``.
    """

    path: str
    writer: str
    kind: Kind
    doc: str
    schema: pa.Schema | None = None
    optional: pa.Schema | None = None
    extra_columns: bool = False

    def __call__(self, **values: object) -> str:
        """The path with its placeholders filled: ``FEATURES(split="train")``."""
        return self.path.format(**values)

    def conform(self, table: pa.Table, *, where: str | None = None) -> pa.Table:
        """``table`` checked against the schema, its untyped columns cast to the declared types
        (all-null columns and lists that are all empty: pandas cannot tell their type).

        Raises StoreError naming the artifact (``where``) and the first column that is missing,
        of another type, or not part of the artifact."""
        if self.schema is None:
            raise StoreError(f"{self.path} is a {self.kind}, not a table")
        name = where or self.path
        optional = self.optional or pa.schema([])
        for spec in list(self.schema) + list(optional):
            if spec.name not in table.column_names:
                if spec.name in self.schema.names:
                    raise StoreError(f"{name}: column {spec.name!r} is missing (it holds "
                                     f"{_kind(spec.type)}); columns are {table.column_names}")
                continue
            got = table.schema.field(spec.name).type
            if _kind(got) == _kind(spec.type):
                continue
            i = table.column_names.index(spec.name)
            if "null" not in _kind(got) and table.column(i).null_count < table.num_rows:
                raise StoreError(f"{name}: column {spec.name!r} is {got}, expected "
                                 f"{_kind(spec.type)}")
            column = table.column(i)
            fixed = (pa.nulls(len(column), spec.type) if column.null_count == len(column)
                     else column.cast(spec.type))
            table = table.set_column(i, spec.name, fixed)
        if not self.extra_columns:
            known = set(self.schema.names) | set(optional.names)
            extra = [c for c in table.column_names if c not in known]
            if extra:
                raise StoreError(f"{name}: column {extra[0]!r} is not part of the artifact "
                                 f"(columns: {sorted(known)})")
        return table


def _kind(t: pa.DataType) -> str:
    """A type's kind: string widths, list field names and fixed-size widths dropped."""
    if pa.types.is_large_string(t) or pa.types.is_string(t):
        return "string"
    if pa.types.is_fixed_size_list(t):
        return f"fixed_size_list<{_kind(t.value_type)}>"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{_kind(t.value_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ", ".join(f"{f.name}: {_kind(f.type)}" for f in t) + ">"
    return str(t)


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema(list(fields))


_STR, _I32, _I64, _F32, _F64, _BOOL = (pa.string(), pa.int32(), pa.int64(), pa.float32(),
                                       pa.float64(), pa.bool_())
_VECTOR = pa.list_(pa.float32(), 1)  # fixed-size: the width is the embedding dimension
_UTC = pa.timestamp("us", tz="UTC")
_SPAN = pa.list_(pa.struct([("start", _I32), ("end", _I32), ("text", _STR), ("score", _F32)]))
_SPLIT_SCHEMA = _schema(("id", _STR), ("text", _STR), ("label", _STR))
_SPLIT_OPTIONAL = _schema(("true_label", _STR), ("flipped", _BOOL))

# data
TRAIN = Artifact("dataset/train.parquet", "data", "table",
                 "Training rows: id, text, label (+ true_label, flipped when noise is injected; "
                 "the source's other columns are kept).", _SPLIT_SCHEMA, _SPLIT_OPTIONAL, True)
EVAL = Artifact("dataset/eval.parquet", "data", "table", "Evaluation rows, same columns.",
                _SPLIT_SCHEMA, _SPLIT_OPTIONAL, True)
POOL = Artifact("dataset/pool.parquet", "data", "table",
                "Unlabeled pool rows; label is null (true_label kept by simulations).",
                _SPLIT_SCHEMA, _SPLIT_OPTIONAL, True)
SPLIT = Artifact("dataset/{split}.parquet", "data", "table", "Any of the three splits above.",
                 _SPLIT_SCHEMA, _SPLIT_OPTIONAL, True)
REJECTED = Artifact("dataset/rejected.parquet", "data", "table",
                    "Source rows quarantined by on_bad_rows = skip, with the reason; line: "
                    "where the record starts in a text file (null in Parquet and Hugging Face "
                    "datasets).",
                    _schema(("row", _I64), ("line", _I64), ("source", _STR), ("reason", _STR)))
# train
MODEL = Artifact("model", "train", "folder", "The fine-tuned classifier (save_pretrained).")
LABELS = Artifact("model/labels.json", "train", "json", "The classes, in logit order.")
DYNAMICS = Artifact("train/dynamics.parquet", "train", "table",
                    "Per-epoch training dynamics of every training row.",
                    _schema(("id", _STR), ("epoch", _I32), ("gold_prob", _F32),
                            ("margin", _F32), ("logit_margin", _F32)))
OOF = Artifact("train/oof.parquet", "train", "table",
               "Out-of-fold class probabilities (train --folds K).",
               _schema(("id", _STR), ("fold", _I64), ("probs", pa.list_(_F32))))
EVAL_PREDICTIONS = Artifact("train/eval_predictions.parquet", "train", "table",
                            "The trained model on the eval split.",
                            _schema(("id", _STR), ("label", _STR), ("pred", _STR),
                                    ("probs", _VECTOR)))
METRICS = Artifact("train/metrics.json", "train", "json", "Accuracy, F1 and training settings.")
# extract
FEATURES = Artifact("features/{split}", "extract", "parts",
                    "Pooled embedding, logits, probabilities, prediction and loss per row.",
                    _schema(("id", _STR), ("label", _STR), ("embedding", _VECTOR),
                            ("logits", _VECTOR), ("probs", _VECTOR), ("pred", _STR),
                            ("loss", _F32), ("n_tokens", _I32)))
FEATURE_PARTS_KEY = Artifact("features/{split}/_plan.json", "extract", "json",
                             "What the split's parts were computed from (the model's files, "
                             "the split's table, max_length, rows per part): a resumed run "
                             "keeps only parts of the same.")
# score
SUSPECTS = Artifact(
    "scores/suspects.parquet", "score", "table",
    "Every training row ranked by suspect score, with the suggested label, the views, the "
    "reasons, its nearest training rows (neighbor_ids, most similar first, with their cosine "
    "similarity: the task panel's similar examples) and the representer (top evidence_top "
    "rows) and duplicate evidence.",
    _schema(("id", _STR), ("rank", _I64), ("suspect_score", _F32), ("given_label", _STR),
            ("suggested_label", _STR), ("suggested_confidence", _F32), ("reasons", pa.list_(_STR)),
            ("duplicate_ids", pa.list_(_STR))),
    _schema(("self_confidence", _F32), ("knn_disagreement", _F32),
            ("oof_self_confidence", _F32), ("margin", _F32), ("knn_margin", _F32),
            ("oof_margin", _F32), ("area_under_margin", _F32), ("words_margin", _F32),
            ("duplicate_conflict", _F32), ("representer", _F32), ("wrong_probability", _F32),
            ("support_ids", pa.list_(_STR)),
            ("support_scores", pa.list_(_F64)), ("oppose_ids", pa.list_(_STR)),
            ("oppose_scores", pa.list_(_F64)), ("neighbor_ids", pa.list_(_STR)),
            ("neighbor_scores", pa.list_(_F64))))
COVERAGE = Artifact("scores/coverage.parquet", "score", "table",
                    "Coverage of eval and pool rows by the training data: coverage_score = "
                    "density x label_agreement x min(1, representation) (the share of training "
                    "rows among the row's neighbours in all splits against train's share); "
                    "neighbours by a cosine that blends the encoder's features with the texts' "
                    "words (score.coverage_words); region: the thin region of an under-covered "
                    "row, -1 for the others.",
                    _schema(("id", _STR), ("split", _STR), ("coverage_score", _F32),
                            ("density", _F32), ("label_agreement", _F32),
                            ("nearest_ids", pa.list_(_STR)), ("is_undercovered", _BOOL)),
                    _schema(("representation", _F32), ("region", _I64)))
ACQUIRE = Artifact("scores/acquire.parquet", "score", "table",
                   "Pool rows worth labeling, by rank, with the thin eval row (or under-covered "
                   "row) each supports most, its support, that row's region, and which targets "
                   "chose it (eval: labeled eval rows steered it; undercovered).",
                   _schema(("id", _STR), ("rank", _I64), ("near_id", _STR),
                           ("similarity", _F32)),
                   _schema(("support", _F32), ("region", _I64), ("targets", _STR)))
THIN_REGIONS = Artifact("scores/thin_regions.parquet", "score", "table",
                        "The regions the under-covered eval and pool rows form, largest first: "
                        "size by split, mean coverage and representation, the words that set "
                        "each apart (TF-IDF inside vs outside) and its least covered texts.",
                        _schema(("region", _I64), ("n", _I64), ("n_eval", _I64),
                                ("n_pool", _I64), ("coverage_mean", _F64),
                                ("representation_mean", _F64), ("terms", pa.list_(_STR)),
                                ("example_ids", pa.list_(_STR)),
                                ("example_texts", pa.list_(_STR))))
SHORTCUTS = Artifact("scores/shortcuts.parquet", "score", "table",
                     "Tokens and word pairs far more frequent in a class than its prior explains "
                     "(Gardner's z; kept when the Bonferroni-corrected binomial test passes), "
                     "ranked by z and association merged, with the share of the class's "
                     "attribution mass each carries (NaN before attributions exist). Empty when "
                     "none passes.",
                     _schema(("token", _STR), ("class", _STR), ("count", _I64),
                             ("class_count", _I64), ("class_share", _F64), ("z", _F64),
                             ("p_value", _F64), ("association", _F64), ("attribution", _F64),
                             ("rank", _I64)))
BALANCE = Artifact("scores/balance.parquet", "score", "table",
                   "Class balance: per class its training count and share, eval count and the "
                   "model's eval recall.",
                   _schema(("class", _STR), ("count", _I64), ("share", _F64),
                           ("eval_count", _I64), ("eval_recall", _F64)))
DUPLICATES = Artifact("scores/duplicates.parquet", "score", "table",
                      "Rows of train, eval and pool in groups of exact (whitespace and case "
                      "aside) or near-duplicate texts (close features and close texts), one "
                      "row per member: its split, label, strongest link and text hash.",
                      _schema(("group_id", _I64), ("id", _STR), ("split", _STR),
                              ("similarity", _F32), ("label", _STR), ("text_hash", _STR)))
EVAL_SUSPECTS = Artifact(
    "scores/eval_suspects.parquet", "score", "table",
    "Every labeled eval row ranked by how likely its label is wrong (the eval audit): "
    "suspect_score is the normalized margin of the given label under the mean of the model's "
    "probabilities, its training neighbours' out-of-fold ones and, where the words tell more "
    "than the class shares, a TF-IDF logistic regression's of its words, fitted on the "
    "training texts (under class-conditional noise, the words left out, the mean rank of "
    "each view's margin, their labels included, noise-corrected: a rank, not a "
    "probability); wrong_probability is 1 - that mean's probability of the given label, "
    "under uniform noise first weighed against the noise model's flip rate (the chance "
    "a label is wrong, not only the model's doubt).",
    _schema(("id", _STR), ("rank", _I64), ("suspect_score", _F32), ("given_label", _STR),
            ("suggested_label", _STR), ("suggested_confidence", _F32), ("margin", _F32),
            ("knn_margin", _F32), ("wrong_probability", _F32)))
SUMMARY = Artifact("scores/summary.json", "score", "json",
                   "The score stage's summary: views, noise model, shortcut test, counts, "
                   "seconds.")
# attribute
PLAN = Artifact("queue/plan.parquet", "attribute", "table",
                "What the next push sends: every task of the round, its source, its place in "
                "the queue and whether it is in Label Studio already.",
                _schema(("id", _STR), ("source", _STR), ("position", _I64), ("rank", _I64),
                        ("pushed", _BOOL)))
PLAN_SETTINGS = Artifact("queue/settings.json", "attribute", "json",
                         "The budget, control share and seed the plan was made with.")
ATTRIBUTION_PARTS_KEY = Artifact("attributions/_plan.json", "attribute", "json",
                                 "What the shards were computed for (rows, method, steps).")
ATTRIBUTIONS = Artifact(
    "attributions.parquet", "attribute", "table",
    "Word attributions per (queued row, target label), spans at offsets of the original text.",
    _schema(("id", _STR), ("source", _STR), ("rank", _I32), ("target_role", _STR),
            ("target_label", _STR), ("method", _STR), ("n_steps", _I32), ("spans", _SPAN),
            ("delta", _F32), ("truncated", _BOOL), ("n_tokens", _I32)),
    # the characters attributed (model.long_text); absent in runs made before it existed
    optional=_schema(("window_start", _I32), ("window_end", _I32)))
ATTRIBUTION_PARTS = Artifact("attributions", "attribute", "parts",
                             "The attribute stage's shards (the unit of resumption).",
                             ATTRIBUTIONS.schema, optional=ATTRIBUTIONS.optional)
# push, serve, pull
MANIFEST = Artifact("studio/manifest.parquet", "push", "table",
                    "Every task relabeler sent: sample id, task, project, rank, queue priority, "
                    "source (flagged, random_control, acquired, eval_audit, second_opinion, "
                    "counterexample) and the round that sent it (push: 1; each `relabeler next`: "
                    "the next, its second opinions included; `relabeler pull`'s second "
                    "opinions: the latest).",
                    _schema(("id", _STR), ("task_id", _I64), ("project_id", _I64),
                            ("rank", _I64), ("priority", _I64), ("source", _STR),
                            ("pushed_at", _UTC)),
                    _schema(("round", _I64)))
MANIFEST_LOCK = Artifact("studio/manifest.lock", "push", "file",
                         "Held (flock) while a push, a round, a pull, second opinions or a "
                         "re-rank reads, sends and writes back the manifest.")
MANIFEST_LEASE = Artifact("studio/manifest.lease", "push", "json",
                          "On a remote run directory, in place of the flock of "
                          "studio/manifest.lock: present (holder, renewal time) while one "
                          "process writes the manifest; taken over once its holder stops "
                          "renewing it for 2 minutes.")
EVENTS = Artifact("studio/events", "serve", "jsonl",
                  "Every webhook event, appended and fsynced before Label Studio is answered, "
                  "a file a day (on an object store a file an hour, and another of the hour "
                  "each 256 KiB); files 0600, an event's project "
                  "record reduced to its id, title and labeling config (Label Studio sends its "
                  "token and task-data password), its task to its id, project and update time.")
RERANKS = Artifact("studio/reranks.parquet", "serve", "table",
                   "Each live re-rank of the waiting review tasks by `relabeler serve`: when, "
                   "the answers that triggered it, the tasks answered and corrected so far, the "
                   "tasks waiting and how many of them moved, the noise model, whether the "
                   "head was refit (head mode), seconds.",
                   _schema(("at", _UTC), ("answer_events", _I64), ("answered", _I64),
                           ("corrected", _I64), ("waiting", _I64), ("reprioritised", _I64),
                           ("noise_model", _STR), ("head_refit", _BOOL), ("seconds", _F64)))
CORRECTIONS = Artifact(
    "labels/corrections.parquet", "pull", "table",
    "One row per answered task: the resolved action and label (the columns retrain needs; a "
    "file made by other tools may hold only those), the votes and who gave them.",
    _schema(("id", _STR), ("old_label", _STR), ("new_label", _STR), ("action", _STR)),
    _schema(("annotators", pa.list_(_STR)), ("n_annotations", _I64), ("agreement", _F64),
            ("updated_at", _UTC), ("source", _STR), ("needs_review", _BOOL),
            ("n_skipped", _I64), ("votes", pa.list_(_STR)), ("comments", pa.list_(_STR)),
            ("annotation_ids", pa.list_(_I64)), ("project_id", _I64), ("task_id", _I64),
            ("via", _STR), ("consensus", _STR), ("second_opinion", _I64)))
UNMAPPED = Artifact("labels/unmapped.parquet", "pull", "table",
                    "Answers pull could not map to a sample or a class, or known only from "
                    "webhook events that no pull saw on the server, with the reason.",
                    _schema(("project_id", _I64), ("task_id", _I64), ("annotation_id", _I64),
                            ("id", _STR), ("reason", _STR), ("annotation", _STR)))
ANNOTATORS = Artifact("labels/annotators.parquet", "pull", "table",
                      "Each annotator's answers, agreement with the consensus, quality "
                      "(the method's score) and estimated accuracy (Dawid-Skene only); null "
                      "with majority vote or one annotator.",
                      _schema(("annotator", _STR), ("answers", _I64),
                              ("agreement_with_consensus", _F64), ("quality", _F64),
                              ("estimated_accuracy", _F64)))
SECOND_OPINIONS = Artifact(
    "labels/second_opinions.parquet", "pull", "table",
    "The answers of the '(second opinion)' project, one row per task as pulled; each pull "
    "folds them into their sample's row of corrections.parquet.",
    CORRECTIONS.schema, CORRECTIONS.optional)
PULL_STATE = Artifact("studio/pull_state.json", "pull", "json",
                      "How far pull has read the event log; per project the watermark, each "
                      "task's annotation fingerprint and each annotation pulls saw on the "
                      "server per task, as the server last showed it (`on_server`).")
# next (a round)
ROUNDS = Artifact("studio/rounds.json", "next", "json",
                  "One record per round: its number, the dataset version it was scored on, "
                  "what it pushed, whether it followed the ranking or random picks (and the "
                  "test that decided), and the answers it started from.")
ROUND_LOCK = Artifact("studio/round.lock", "next", "file",
                      "Held while a round runs (host, pid, start time): a second `relabeler "
                      "next` on the run stops instead of pushing the same tasks twice. One left "
                      "by a dead process of this host is taken over by one process (judged and "
                      "replaced under a flock of `studio/`); a round removes it on leaving only "
                      "while it names that round's process. On a remote run directory it is a "
                      "lease the round renews, taken over once not renewed for 2 minutes.")
# retrain, report
RETRAIN = Artifact("retrain/v{n}", "retrain", "folder",
                   "Dataset version N: its own dataset/, model/ and train/ (the layout above).")
EVAL_AUDITED = Artifact(
    "retrain/v{n}/dataset/eval_audited.parquet", "retrain", "table",
    "The eval split with the eval audit's answers (a new eval version; dataset/eval.parquet "
    "is never edited): label as audited, previous_label, label_source (original, reviewed, "
    "corrected); dropped rows left out.", _SPLIT_SCHEMA, _SPLIT_OPTIONAL, True)
#: the audited eval split inside a version's folder (retrain/vN/)
EVAL_AUDITED_FILE = "dataset/eval_audited.parquet"
COMPARISON = Artifact("retrain/v{n}/comparison.json", "retrain", "json",
                      "The baseline and version N on the same eval split, with intervals; "
                      "\"audited\": the same on the audited eval labels.")
REPORT_JSON = Artifact("report/report.json", "report", "json", "The report's numbers.")
REPORT_HTML = Artifact("report/report.html", "report", "file", "The report, one HTML page.")
REPORT_PLOT = Artifact("report/{name}.png", "report", "file", "The report's plots.")
MARKER = Artifact("_stages/{stage}.json", "every stage", "json",
                  "A finished stage's marker, written last: a stage without one is unfinished.")

ARTIFACTS: tuple[Artifact, ...] = (
    TRAIN, EVAL, POOL, REJECTED, MODEL, LABELS, DYNAMICS, OOF, EVAL_PREDICTIONS, METRICS,
    FEATURES, FEATURE_PARTS_KEY, SUSPECTS, EVAL_SUSPECTS, COVERAGE, ACQUIRE, THIN_REGIONS,
    SHORTCUTS, BALANCE, DUPLICATES, SUMMARY, PLAN,
    PLAN_SETTINGS, ATTRIBUTION_PARTS, ATTRIBUTION_PARTS_KEY, ATTRIBUTIONS, MANIFEST,
    MANIFEST_LOCK, MANIFEST_LEASE, EVENTS,
    RERANKS, CORRECTIONS, UNMAPPED, ANNOTATORS, SECOND_OPINIONS, PULL_STATE, ROUNDS,
    ROUND_LOCK, RETRAIN, EVAL_AUDITED, COMPARISON, REPORT_JSON, REPORT_HTML, REPORT_PLOT,
    MARKER)

#: What each verb reads; what it writes is every artifact whose ``writer`` it is.
STAGE_READS: dict[str, tuple[Artifact, ...]] = {
    "data": (),
    "train": (TRAIN, EVAL),
    "extract": (SPLIT, MODEL, LABELS),
    "score": (FEATURES, LABELS, OOF, DYNAMICS, TRAIN, EVAL_PREDICTIONS, ATTRIBUTIONS, SPLIT),
    "attribute": (SUSPECTS, ACQUIRE, TRAIN, POOL, FEATURES, MODEL, LABELS, MANIFEST),
    "push": (PLAN, SUSPECTS, ACQUIRE, COVERAGE, ATTRIBUTIONS, TRAIN, POOL, FEATURES, LABELS,
             MANIFEST, EVAL_SUSPECTS, EVAL),
    "serve": (SUSPECTS, ATTRIBUTIONS, ACQUIRE, COVERAGE, TRAIN, POOL, LABELS, MODEL,
              EVAL_SUSPECTS, EVAL, MANIFEST, FEATURES, OOF, DYNAMICS, CORRECTIONS, EVENTS,
              RERANKS),
    "pull": (MANIFEST, EVENTS, PULL_STATE, LABELS, FEATURES, OOF, CORRECTIONS, SECOND_OPINIONS,
             SUSPECTS, ATTRIBUTIONS, TRAIN),
    "next": (MANIFEST, CORRECTIONS, ROUNDS, SUSPECTS, FEATURES, TRAIN, EVAL, MODEL, LABELS),
    "retrain": (CORRECTIONS, TRAIN, EVAL, POOL, MODEL, EVAL_PREDICTIONS, DUPLICATES),
    "report": (COMPARISON, EVAL_AUDITED, CORRECTIONS, MANIFEST, ROUNDS, SUMMARY, SUSPECTS,
               EVAL_SUSPECTS, SHORTCUTS, BALANCE, THIN_REGIONS, TRAIN, METRICS,
               EVAL_PREDICTIONS, DUPLICATES, EVAL, POOL, ANNOTATORS, UNMAPPED, ACQUIRE),
}

#: The stages whose output a stage is made from: a stage's marker records when each of them
#: finished, and the stage is stale (to be redone) once one of them finished again since, or
#: is stale itself (``RunStore.stale``). Data's own inputs are checked by the data stage.
STAGE_UPSTREAM: dict[str, tuple[str, ...]] = {
    "train": ("data",),
    "extract.train": ("train",),
    "extract.eval": ("train",),
    "extract.pool": ("train",),
    "score": ("train", "extract.train", "extract.eval", "extract.pool"),
    "attribute": ("score",),
    "retrain": ("train",),
}

#: What a verb rewrites that another verb writes first (``--force`` of the first removes it):
#: push marks the plan's rows sent, serve moves the waiting tasks' priorities, pull adds the
#: second-opinion tasks (``studio.second_opinions``), next pulls, retrains and pushes a round.
STAGE_UPDATES: dict[str, tuple[Artifact, ...]] = {
    "push": (PLAN,),
    "serve": (MANIFEST,),
    "pull": (MANIFEST,),
    "next": (CORRECTIONS, ANNOTATORS, RETRAIN, MANIFEST),
}


_PLACEHOLDER = re.compile(r"\\\{(\w+)\\\}")
_PART = r"/part-\d{5,}\.parquet"


def _pattern(artifact: Artifact) -> re.Pattern:
    body = _PLACEHOLDER.sub(r"[^/]+", re.escape(artifact.path))
    return re.compile(body + (_PART if artifact.kind == "parts" else ""))


_TABLES = [(a, _pattern(a)) for a in ARTIFACTS if a.schema is not None]


def table_artifact(path: str) -> Artifact | None:
    """The registered table (or part of a ``parts`` folder) that ``path`` names, if any.

    Inside a dataset version (``retrain/vN/``) the layout repeats: its own dataset/, train/...
    """
    for candidate in (path, re.sub(r"^retrain/v\d+/", "", path)):
        for artifact, pattern in _TABLES:
            if pattern.fullmatch(candidate):
                return artifact
    return None


def stage_outputs(stage: str) -> list[str]:
    """The paths a stage writes without placeholders (what ``--force`` removes)."""
    return [a.path for a in ARTIFACTS if a.writer == stage and "{" not in a.path]


def stage_table() -> str:
    """The stage table of ``docs/architecture.md``: what each verb reads and writes."""
    lines = ["| verb | reads | writes |", "|---|---|---|"]
    for stage, reads in STAGE_READS.items():
        writes = [f"`{a.path}`" for a in ARTIFACTS if a.writer == stage]
        writes += [f"`{a.path}` (updates)" for a in STAGE_UPDATES.get(stage, ())]
        lines.append(f"| `relabeler {stage}` | {', '.join(f'`{a.path}`' for a in reads)} | "
                     f"{', '.join(writes)} |")
    return "\n".join(lines)


def markdown_table() -> str:
    """The artifact table of ``docs/architecture.md``, from the registry."""
    lines = ["| artifact | written by | kind | columns | what it holds |",
             "|---|---|---|---|---|"]
    for a in ARTIFACTS:
        columns = ""
        if a.schema is not None:
            columns = ", ".join(a.schema.names)
            if a.optional is not None and len(a.optional):
                columns += "; optional: " + ", ".join(a.optional.names)
        lines.append(f"| `{a.path}` | {a.writer} | {a.kind} | {columns} | {a.doc} |")
    return "\n".join(lines)
