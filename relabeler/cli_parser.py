"""The ``relabeler`` command line: its verbs, their flags and the checks of flag values.

:func:`build_parser` only describes the arguments; :mod:`relabeler.cli` runs the verbs.
"""

from __future__ import annotations

import argparse

from relabeler._version import __version__

DEFAULT_CONFIG = "relabeler.toml"


def _common(parser: argparse.ArgumentParser, *, force: bool = True,
            config_help: str = f"TOML config (default: ./{DEFAULT_CONFIG} if present)") -> None:
    """The flags every verb shares; ``--force`` only where the verb has a finished stage to
    redo (push, pull, next, serve and report work from where the run is: nothing to force)."""
    parser.add_argument("--config", help=config_help)
    parser.add_argument("--run", dest="run_dir", help="run directory (folder or URI)")
    parser.add_argument("--set", dest="assignments", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override any config key; repeatable")
    if force:
        parser.add_argument("--force", action="store_true", help="redo a finished stage")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")


def _data_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--data", dest="data.source", help="file, hf:NAME, or demo dataset name")
    g.add_argument("--id-col", dest="data.id_col")
    g.add_argument("--text-col", dest="data.text_col")
    g.add_argument("--label-col", dest="data.label_col")
    g.add_argument("--split-col", dest="data.split_col")
    g.add_argument("--eval-data", dest="data.eval_source")
    g.add_argument("--pool-data", dest="data.pool_source")
    g.add_argument("--eval-fraction", dest="data.eval_fraction", type=float)
    g.add_argument("--pool-fraction", dest="data.pool_fraction", type=float)
    g.add_argument("--sample", dest="data.sample", type=int,
                   help="at most this many rows, a stratified subsample (all rows when the "
                   "source has fewer: logged)")
    g.add_argument("--data-seed", dest="data.seed", type=int)
    g.add_argument("--on-bad-rows", dest="data.on_bad_rows", choices=("fail", "skip"))
    g.add_argument("--noise", dest="data.noise_rate", type=float,
                   help="flip this share of training labels on purpose (simulation)")
    g.add_argument("--noise-kind", dest="data.noise_kind", choices=("uniform", "asymmetric"))


def _train_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("training")
    g.add_argument("--model", dest="model.name", help="HF model folder or hub id")
    g.add_argument("--max-length", dest="model.max_length", type=int)
    g.add_argument("--long-text", dest="model.long_text",
                   choices=("auto", "truncate", "windows", "evidence"),
                   help="texts longer than --max-length: truncate, read every window, or "
                   "classify the window with the most class evidence")
    g.add_argument("--mode", dest="train.mode", choices=("auto", "full", "head"))
    g.add_argument("--epochs", dest="train.epochs", type=int)
    g.add_argument("--batch-size", dest="train.batch_size", type=int)
    g.add_argument("--lr", dest="train.learning_rate", type=float)
    g.add_argument("--folds", dest="train.folds", type=int)
    g.add_argument("--seed", dest="train.seed", type=int)


def _extract_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("extract")
    g.add_argument("--splits", dest="extract.splits", type=lambda s: [x for x in s.split(",") if x],
                   help="comma-separated: train,eval,pool")
    g.add_argument("--extract-batch-size", dest="extract.batch_size", type=int)
    g.add_argument("--shard-size", dest="extract.shard_size", type=int)
    g.add_argument("--actors", dest="extract.num_actors", type=int)
    g.add_argument("--threads", dest="extract.num_threads", type=int)


def _studio_flags(parser: argparse.ArgumentParser, *, project_title: bool = False
                  ) -> argparse._ArgumentGroup:
    """Which Label Studio (every verb that talks to one); the project title where it names the
    project (push, run): pull and serve find the pushed projects in the manifest."""
    g = parser.add_argument_group("Label Studio")
    g.add_argument("--url", dest="studio.url",
                   help="Label Studio URL (default: $LABEL_STUDIO_URL, else `studio up`'s)")
    if project_title:
        g.add_argument("--project-title", dest="studio.project_title")
    g.add_argument("--data-dir", dest="studio.data_dir",
                   help="data folder of the local server (`relabeler studio up`)")
    return g


def _budgets(text: str) -> list[float]:
    """``--budgets``: comma-separated shares in (0, 1], or 'none'."""
    if text.strip().lower() == "none":
        return []
    try:
        budgets = [float(b) for b in text.split(",") if b.strip()]
    except ValueError:
        budgets = []
    if not budgets or any(not 0 < b <= 1 for b in budgets):
        raise argparse.ArgumentTypeError(f"expected shares in (0, 1] separated by commas, or "
                                         f"'none'; got {text!r}")
    return budgets


def _rounds(text: str) -> int:
    """``--rounds``: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {text!r}")
    return value


def _accuracies(text: str) -> list[float]:
    """``--annotators``: comma-separated accuracies in (0, 1], one per simulated annotator."""
    try:  # an empty item ("0.9,,0.8") is a typo, not one annotator fewer
        values = [float(a) for a in text.split(",")]
    except ValueError:
        values = []
    if len(values) < 2 or any(not 0 < a <= 1 for a in values):
        raise argparse.ArgumentTypeError(f"expected two or more accuracies in (0, 1] separated "
                                         f"by commas; got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relabeler",
        description="Find wrong labels and thin spots in a text classifier's training data.")
    parser.add_argument("--version", action="version", version=f"relabeler {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = sub.add_parser("init", help="write a commented relabeler.toml template")
    p.add_argument("path", nargs="?", default=DEFAULT_CONFIG)
    p.add_argument("--force", action="store_true", help="overwrite an existing file")

    p = sub.add_parser("data", help="read, validate and split the dataset into dataset/")
    _common(p)
    _data_flags(p)

    p = sub.add_parser("train", help="fine-tune the classifier (and K fold models)")
    _common(p)
    _data_flags(p)
    _train_flags(p)

    p = sub.add_parser("extract", help="per-sample features with a Ray Data job")
    _common(p)
    _extract_flags(p)

    p = sub.add_parser("score", help="rank suspect labels, map under-covered data")
    _common(p)
    g = p.add_argument_group("score")
    g.add_argument("--k", dest="score.k", type=int, help="nearest neighbours per sample")
    g.add_argument("--budget", dest="score.acquire_budget", type=int,
                   help="pool samples to propose for labeling")

    p = sub.add_parser("attribute", help="word attributions (captum IG) for the top of the "
                       "suspect and acquisition queues: attributions.parquet")
    _common(p)
    g = p.add_argument_group("attribute")
    g.add_argument("--top", dest="attribute.top", type=int,
                   help="top N suspects (2 targets each) and acquired samples, and every task "
                        "the push plan holds (studio.budget); 0 = all")
    g.add_argument("--method", dest="attribute.method", choices=("ig", "grad_x_input"))
    g.add_argument("--steps", dest="attribute.n_steps", type=int,
                   help="Integrated Gradients steps")

    p = sub.add_parser("studio", help="start or stop a local Label Studio (127.0.0.1, SQLite)")
    p.add_argument("action", choices=("up", "down"))
    _common(p, force=False)
    g = p.add_argument_group("studio")
    g.add_argument("--port", dest="studio.port", type=int,
                   help="port on 127.0.0.1 (default: the first free one from 8080)")
    g.add_argument("--data-dir", dest="studio.data_dir", help="the server's data folder")

    p = sub.add_parser("push", help="send the suspect queue to Label Studio, highest priority "
                       "first, with suggestions and evidence")
    _common(p, force=False)
    g = _studio_flags(p, project_title=True)
    g.add_argument("--budget", dest="studio.budget", type=int,
                   help="training samples in the project (queue top + random controls)")
    g.add_argument("--control-share", dest="studio.control_share", type=float)
    g.add_argument("--batch-size", dest="studio.batch_size", type=int)

    p = sub.add_parser("pull", help="take the answers back into labels/corrections.parquet")
    _common(p, force=False)
    _studio_flags(p)

    p = sub.add_parser("next", help="one more round: pull the answers, retrain, re-score, "
                       "push the next batch into the same review project")
    _common(p, force=False)
    _studio_flags(p)
    p.add_argument("--batch", dest="loop.batch", type=int,
                   help="review tasks this round adds (default: [loop] batch, else the budget)")

    p = sub.add_parser("serve", help="the ML backend: predictions for Label Studio, webhook "
                       "events into studio/events/")
    _common(p, force=False)
    g = _studio_flags(p)
    g.add_argument("--host", dest="studio.backend_host")
    g.add_argument("--port", dest="studio.backend_port", type=int)
    g.add_argument("--backend-url", dest="studio.backend_url",
                   help="URL Label Studio reaches this backend at")
    g.add_argument("--no-register", action="store_true",
                   help="do not connect the backend and webhook to the pushed projects")

    p = sub.add_parser("retrain", help="apply labels/corrections.parquet to a new dataset "
                       "version, retrain, compare on eval")
    _common(p)
    p.add_argument("--dedupe", action="store_true",
                   help="keep one training row per group of scores/duplicates.parquet (its "
                   "resolved label)")
    p.add_argument("--debias", dest="train.debias", choices=("none", "reweight", "mask"),
                   help="mitigate the shortcut tokens of scores/shortcuts.parquet: loss weights "
                   "that cancel their class association, or masking them in training texts")
    p.add_argument("--class-weights", dest="train.class_weights", choices=("none", "balanced"),
                   help="balanced: loss weights inversely proportional to class frequency")

    p = sub.add_parser("report", help="what the relabeling bought: report/report.{json,html}")
    _common(p, force=False)

    p = sub.add_parser("simulate", help="inject label noise, run the pipeline, measure "
                       "detection against cleanlab, TrustAI and random")
    p.add_argument("--data", required=True, help="file, hf:NAME, or demo dataset name")
    p.add_argument("--text-col")
    p.add_argument("--label-col")
    p.add_argument("--id-col")
    p.add_argument("--sample", type=int,
                   help="at most this many rows, a stratified subsample first (all rows when "
                   "the source has fewer: logged)")
    p.add_argument("--noise", type=float, required=True, help="share of labels to flip")
    p.add_argument("--noise-kind", choices=("uniform", "asymmetric"),
                   help="default uniform")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--out", required=True, help="output folder (its run directory is OUT/run)")
    p.add_argument("--mode", choices=("auto", "full", "head"), help="default auto")
    p.add_argument("--folds", type=int, help="default 5")
    p.add_argument("--test-fraction", type=float, help="default 0.2")
    p.add_argument("--pool-fraction", type=float,
                   help="share held back as an unlabeled pool (coverage acquisition); default "
                   "0.2")
    p.add_argument("--budgets", type=_budgets, default="0.01,0.02,0.05,0.10,0.20",
                   help="relabeling budgets as shares of train; 'none' = detection only")
    p.add_argument("--annotators", type=_accuracies, metavar="A1,A2,...",
                   help="two or more simulated annotators, of these accuracies in (0, 1], "
                   "answer the top of the queue; report majority vote against the model-aided "
                   "consensus")
    p.add_argument("--rounds", type=_rounds, metavar="R",
                   help="spend the largest budget in R rounds with oracle answers, retraining "
                   "and re-scoring between them; compare with one shot at the same budget and "
                   "estimate the errors left after each round")
    p.add_argument("--eval-noise", type=float, metavar="R",
                   help="flip R of the eval labels too (same kind) and measure the eval audit")
    p.add_argument("--shortcut", metavar="TOKEN:CLASS:RATE",
                   help="insert TOKEN into RATE of CLASS's training texts and report its rank "
                   "among the shortcuts score finds")
    p.add_argument("--undercover", metavar="SPEC",
                   help="COLUMN=VALUE[,VALUE...] or cluster:K (K clusters of the encoder's "
                   "states, one of those a model without it misclassifies most): move that "
                   "sub-population's training rows to the pool (all but --undercover-keep) and "
                   "measure whether coverage acquisition finds it again")
    p.add_argument("--undercover-keep", type=float, metavar="SHARE",
                   help="share of the held-out group's training rows left in train (with "
                   "--undercover only); default 0.1")
    p.add_argument("--config", help="TOML config: its settings stand where no flag is "
                   "given (the flags' defaults apply to what it leaves out)")
    p.add_argument("--set", dest="assignments", action="append", default=[],
                   metavar="SECTION.KEY=VALUE")
    p.add_argument("--force", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")

    p = sub.add_parser("run", help="train, extract, score, attribute, push: up to the people")
    _common(p)
    _data_flags(p)
    _train_flags(p)
    _studio_flags(p, project_title=True)
    p.add_argument("--no-push", action="store_true", help="stop before Label Studio")

    p = sub.add_parser("demo", help="the whole loop on sms-spam with 10%% injected noise, two "
                       "rounds, three simulated annotators answering through a local Label "
                       "Studio")
    _common(p, config_help="TOML config, layered over the demo's own settings (the demo does "
            f"not read ./{DEFAULT_CONFIG})")
    _train_flags(p)
    for verb in sub.choices.values():  # errors name the flag a user typed, not "flag"
        verb.set_defaults(flag_names={action.dest: max(action.option_strings, key=len)
                                      for action in verb._actions
                                      if "." in action.dest and action.option_strings})
    return parser
