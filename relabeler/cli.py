"""The ``relabeler`` command: one verb per stage.

Every verb reads the run configuration (``--config relabeler.toml``; defaults without one),
applies ``--set section.key=value`` and its own flags, and works in the run directory
(``--run DIR``, a folder or an fsspec URI).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from relabeler.cli_parser import DEFAULT_CONFIG, build_parser
from relabeler.config import RunConfig, apply_overrides, load_config
from relabeler.config_template import render_template
from relabeler.errors import ConfigError, RelabelerError

log = logging.getLogger("relabeler")


def _overrides(args: argparse.Namespace) -> dict:
    return {k: v for k, v in vars(args).items() if "." in k and v is not None}


def resolve_config(args: argparse.Namespace) -> RunConfig:
    path = args.config
    if path is None and Path(DEFAULT_CONFIG).exists():
        path = DEFAULT_CONFIG
    config = load_config(path)
    apply_overrides(config, _overrides(args), args.assignments,
                    earlier=str(path) if path else "config",
                    flags=getattr(args, "flag_names", None))
    if args.run_dir:
        config.run_dir = args.run_dir
    return config


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    # torch sets its loggers to WARNING (or as TORCH_LOGS asks) once imported; before that
    # they follow the root logger, and an import cut short by Ctrl-C left its atexit hooks
    # logging at INFO ("FakeTensor cache stats") after the interrupt line
    logging.getLogger("torch").setLevel(logging.WARNING)
    # a line per read of a remote file ("AdaptiveReadaheadCache enabled") buried the report's
    # warnings; gcsfs logs each request it gave up on with its traceback, where relabeler's
    # own line names the run directory and the failure
    for name, level in (("fsspec", logging.WARNING), ("gcsfs", logging.CRITICAL)):
        if logging.getLogger(name).level == logging.NOTSET:
            logging.getLogger(name).setLevel(level)
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - a dependency
        pass


def _cmd_init(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; name the file to write, e.g. "
                          f"{path / DEFAULT_CONFIG}")
    if path.exists() and not args.force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it")
    if not path.parent.is_dir():
        raise ConfigError(f"{path}: folder {path.parent} does not exist; create it first")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:  # beside it, then renamed: a failed write leaves the old file whole
        tmp.write_text(render_template(), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot write it: {exc.strerror or exc}") from exc
    print(f"wrote {path}")
    return 0


#: the verbs that read a run made earlier (by data, train, run or demo): a mistyped --run is
#: an error that creates nothing
READS_A_RUN = frozenset({"extract", "score", "attribute", "push", "pull", "next", "serve",
                         "retrain", "report"})


def _run(args: argparse.Namespace, config: RunConfig):
    from relabeler.api import Run
    from relabeler.store import RunStore

    if args.verb in READS_A_RUN:
        RunStore(config.run_dir, create=False)  # a StoreError naming it where there is none
    return Run(config.run_dir, config, progress=not args.quiet)


def _cmd_data(args: argparse.Namespace, config: RunConfig) -> int:
    info = _run(args, config).data(force=args.force)
    print(f"dataset: {info['n_train']} train, {info['n_eval']} eval, {info['n_pool']} pool, "
          f"{info['n_rejected']} rejected -> {config.run_dir}/dataset/")
    return 0


def _cmd_train(args: argparse.Namespace, config: RunConfig) -> int:
    info = _run(args, config).train(force=args.force)
    acc = info.get("eval_accuracy")
    print(f"model ({info.get('mode')} mode) -> {config.run_dir}/model/"
          + (f"  eval accuracy {acc:.4f}" if acc is not None else ""))
    return 0


def _cmd_extract(args: argparse.Namespace, config: RunConfig) -> int:
    info = _run(args, config).extract(force=args.force)
    for split, split_info in info.items():
        print(f"features/{split}: {split_info['rows']} rows -> {config.run_dir}/features/{split}/")
    return 0


def demo_config(args: argparse.Namespace) -> RunConfig:
    config = RunConfig(run_dir="runs/demo")
    config.data.source = "sms-spam"
    config.data.noise_rate = 0.10
    config.data.noise_kind = "uniform"
    config.data.pool_fraction = 0.1
    config.train.folds = 5
    config.score.acquire_budget = 20
    # a review budget near the number of flipped labels (390): reviewing only half of them
    # moves a linear head's boundary little (or the wrong way), so the report would show noise
    config.studio.budget = 400
    config.attribute.top = config.studio.budget
    config.studio.project_title = "relabeler demo: sms-spam"
    # three simulated annotators answer every task; round 2 adds 200 tasks
    config.studio.overlap = 3
    config.loop.batch = 200
    # a --config file layers over the demo's settings; ./relabeler.toml is not read (it
    # describes the user's own project, not the demo)
    config = load_config(args.config, base=config)
    apply_overrides(config, _overrides(args), args.assignments,
                    earlier=f"{args.config} or the demo's settings" if args.config
                    else "the demo's settings", flags=getattr(args, "flag_names", None))
    if args.run_dir:
        config.run_dir = args.run_dir
    return config


def _cmd_run(args: argparse.Namespace, config: RunConfig) -> int:
    run = _run(args, config)
    out = run.pipeline(push=not args.no_push, force=args.force, say=print)
    if "push" in out:
        print(f"the queue is in Label Studio (project {out['push'].project_id}); when people "
              f"have answered: relabeler pull, relabeler retrain, relabeler report "
              f"(--run {config.run_dir})")
        _say_without_eval(run)
    _print_queue_head(run)
    return 0


def _cmd_demo(args: argparse.Namespace, config: RunConfig) -> int:
    from relabeler.jobs.loop import run_demo
    from relabeler.plugin.server import CREDENTIALS_FILE
    from relabeler.store import RunStore

    run = _run(args, config)
    print(f"relabeler demo: {config.data.source} with {config.data.noise_rate:.0%} of the "
          f"training labels flipped on purpose; run directory {config.run_dir}")
    # the demo makes its run as it goes (Run.store only opens a run made earlier)
    out = run_demo(RunStore(config.run_dir), config, force=args.force,
                   progress=not args.quiet, say=print)
    _print_queue_head(run)
    print()
    print(f"done in {out['seconds']:.0f} s")
    print(f"  pushed {out['pushed']} tasks {out['sources']} in {len(out['rounds'])} rounds; "
          f"{out['answered']} answers by SIMULATED annotators"
          + ("" if out["answered_now"] == out["answered"] else
             f" ({out['answered_now']} of them this run)")
          + f"; {out['changed']} labels changed by them")
    for row in out["burn_down"]:
        low, mid, high = row["remaining"] or (None,) * 3
        left = ("wrong labels left: n/a (no answered controls)" if mid is None else
                f"about {mid:.0f} wrong labels left [{_shown(low, '.0f')}, "
                f"{_shown(high, '.0f')}]")
        print(f"  round {row['round']} ({row['mode']}): {row['tasks']} tasks, {row['answered']} "
              f"answered, {row['corrections']} corrections, {row['labels_spent']} labels; "
              f"{left}" + (f" (really {row['true_remaining']})" if row["true_remaining"]
                           is not None else "") + f"; advice {row['advice']}")
    for a in out["annotators"]:
        print(f"  annotator {a['annotator']}: {a['answers']} answers, agreement with the "
              f"consensus {_shown(a['agreement_with_consensus'], '.2f')}, quality "
              f"{_shown(a['quality'], '.2f')}")
    if out["flagged_rate"] is not None:
        print(f"  correction rate: {_shown(out['flagged_rate'], '.0%')} of the flagged tasks, "
              f"{_shown(out['control_rate'], '.0%')} of the random controls")
    from relabeler.report.stats import change_text

    print(f"  eval accuracy {out['before']:.4f} -> {out['after']:.4f} "
          f"({change_text(out['after'] - out['before'], out['ci95'])})")
    print(f"  Label Studio: {out['url']}  login {out['username']}, password in "
          f"{Path(config.studio.data_dir) / CREDENTIALS_FILE}")
    print(f"  report: {out['report']}")
    print("  stop Label Studio with: relabeler studio down")
    return 0


def _shown(value, spec: str) -> str:
    """``value`` formatted by ``spec``; n/a where nothing was measured (None or NaN)."""
    return "n/a" if value is None or value != value else format(value, spec)


def _print_queue_head(run, n: int = 5) -> None:
    print(f"\n  top {n} of the queue:")
    for row in run.suspects().head(n).itertuples():
        # a line break, carriage return or terminal escape in the data would rewrite the line
        text = "".join(c if c.isprintable() else " " for c in str(row.text))
        text = text[:70] + ("..." if len(text) > 70 else "")
        print(f"  {row.rank:>3}. [{row.given_label} -> {row.suggested_label} "
              f"{row.suggested_confidence:.2f}] {text}")


def _cmd_score(args: argparse.Namespace, config: RunConfig) -> int:
    info = _run(args, config).score(force=args.force)
    print(f"scores: {info['n_train']} training samples ranked -> "
          f"{config.run_dir}/scores/suspects.parquet; {info['n_undercovered']} under-covered "
          f"eval/pool samples, {info['n_acquire']} pool samples to acquire")
    if info.get("representer_skipped"):
        print(f"  no representer evidence (ranked without it): {info['representer_skipped']}; "
              f"lower score.min_agreement to use the best refit")
    return 0


def _cmd_attribute(args: argparse.Namespace, config: RunConfig) -> int:
    info = _run(args, config).attribute(force=args.force)
    print(f"attributions: {info['rows']} rows ({info['suspects']} suspects x 2 targets, "
          f"{info['acquire']} acquired pool samples; {info['method']}, {info['n_steps']} steps) "
          f"-> {config.run_dir}/attributions.parquet")
    return 0


def _cmd_studio(args: argparse.Namespace, config: RunConfig) -> int:
    from relabeler.plugin.server import start_server, stop_server

    studio = config.studio
    if args.action == "down":
        stopped = stop_server(studio.data_dir)
        print("Label Studio stopped" if stopped else f"no Label Studio runs for {studio.data_dir}")
        return 0
    server = start_server(studio.data_dir, port=studio.port, venv=studio.venv or None)
    # the password and the token stay in their 0600 files: a terminal's scrollback is a log
    print(f"Label Studio is up at {server.url} (data in {server.data_dir})")
    print(f"  log in:    {server.credentials.username}, password in {server.credentials_path}")
    print(f"  API token: in {server.token_path} (mode 0600)")
    print(f"  push/pull find it by its data dir; other tools: export LABEL_STUDIO_URL="
          f"{server.url} {studio.api_key_env}=$(cat {server.token_path})")
    default = type(studio)().data_dir
    where = "" if studio.data_dir == default else f" --data-dir {shlex.quote(studio.data_dir)}"
    print(f"  stop it:   relabeler studio down{where}")
    return 0


def _cmd_push(args: argparse.Namespace, config: RunConfig) -> int:
    run = _run(args, config)
    result = run.push()
    print(f"push: project {result.project_id} holds {result.total_tasks} tasks "
          f"({result.new_flagged} flagged + {result.new_controls} random controls new, "
          f"{result.reprioritised} moved in the queue)")
    if result.acquire_project_id is not None:
        print(f"  acquisition project {result.acquire_project_id}: {result.new_acquired} new")
    if result.eval_project_id is not None:
        print(f"  eval audit project {result.eval_project_id}: {result.new_eval} new")
    if not result.has_evidence:
        print("  no attributions.parquet in the run: tasks have no evidence regions (run "
              "`relabeler attribute`, then push again: the tasks sent get theirs then)")
    _say_without_eval(run)
    return 0


def _say_without_eval(run) -> None:
    """Before people spend labels: a run without eval rows can be pulled but not retrained,
    reported on or taken to a next round (each compares the models on the eval rows)."""
    from relabeler import artifacts

    store = run.store
    if store.exists(artifacts.EVAL.path) and store.read_table(
            artifacts.EVAL.path, columns=["id"]).num_rows:
        return
    print(f"  warning: {store.uri} has no eval rows (data.eval_fraction = 0 and no eval "
          f"source): pull will take the answers, but retrain, report and next compare the "
          f"models on eval rows and will refuse; to measure what the answers buy, make a run "
          f"with eval rows (data.eval_fraction > 0) before people answer")


def _cmd_pull(args: argparse.Namespace, config: RunConfig) -> int:
    result = _run(args, config).pull()
    print(f"pull: {result.tasks_changed} tasks new or changed; {result.corrections} corrections "
          f"({result.needs_review} need review) -> {config.run_dir}/labels/corrections.parquet")
    if result.unmapped:
        print(f"  {result.unmapped} answers set aside, each with its reason (not an answer "
              f"of a run's class, superseded, deleted, ...): "
              f"{config.run_dir}/labels/unmapped.parquet")
    if result.deleted or result.withdrawn or result.from_events_only:
        print(f"  {result.deleted} deleted answers dropped, {result.withdrawn} corrections "
              f"withdrawn, {result.from_events_only} answers kept from webhook events only")
    if result.unconfirmed:
        print(f"  {result.unconfirmed} answers or updates known only from webhook events that no "
              f"pull saw on the server were not taken (in labels/unmapped.parquet)")
    return 0


def _cmd_next(args: argparse.Namespace, config: RunConfig) -> int:
    result = _run(args, config).next(say=print)
    if result.round is None:
        print(f"next: {result.message}")
        return 0
    print(f"next: {result.message}")
    test = result.queue_test
    if test.get("available"):
        print(f"  round {test['round']}'s flagged tasks: {test['flagged']['rate']:.0%} of "
              f"{test['flagged']['answered']} corrected; random controls "
              f"{test['controls']['rate']:.0%} of {test['controls']['answered']} (one-sided "
              f"Fisher p = {test['p_value']:.3g})")
    print("  " + ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items()))
    print(f"  when people have answered: relabeler next (another round), or relabeler "
          f"pull, retrain and report (--run {config.run_dir})")
    return 0


def _cmd_serve(args: argparse.Namespace, config: RunConfig) -> int:
    try:
        _run(args, config).serve(register=not args.no_register)
    except KeyboardInterrupt:  # Ctrl-C is how serve is stopped, not a failure
        log.info("serve: stopped")
    return 0


def _cmd_retrain(args: argparse.Namespace, config: RunConfig) -> int:
    info = _run(args, config).retrain(force=args.force, dedupe=args.dedupe)
    deduped = f", {info['deduped']} duplicates dropped" if "deduped" in info else ""
    print(f"dataset version {info['version']}: {info['changed']} relabeled, {info['dropped']} "
          f"dropped, {info['acquired']} acquired{deduped}; eval accuracy {info['before']:.4f} -> "
          f"{info['after']:.4f} -> {config.run_dir}/retrain/v{info['version']}/")
    if "audited" in info:
        print(f"  on the audited eval labels: {info['audited']['before']:.4f} -> "
              f"{info['audited']['after']:.4f}")
    return 0


def _cmd_report(args: argparse.Namespace, config: RunConfig) -> int:
    from relabeler.artifacts import REPORT_HTML

    run = _run(args, config)
    report = run.report()
    print(f"eval accuracy {_change(report['eval']['accuracy'])} for "
          f"{report['labels_spent']} labels")
    unsteered = report.get("eval_unsteered") or {}
    if "accuracy" in unsteered:
        print(f"  on the {unsteered['n_eval']} eval rows that did not steer acquisition: "
              f"{_change(unsteered['accuracy'])}")
    print(f"report: {run.store.path(REPORT_HTML.path)}")
    return 0


def _change(acc: dict) -> str:
    """``before -> after (delta points, 95% CI [low, high]: what it says)`` of a paired
    leaf."""
    from relabeler.report.stats import change_text

    return f"{acc['before']:.4f} -> {acc['after']:.4f} ({change_text(acc['delta'], acc['ci95'])})"


#: simulate's flags by the config key each sets (its errors name the flag)
SIMULATE_FLAGS = {"data.noise_rate": "--noise", "data.eval_noise_rate": "--eval-noise",
                  "data.eval_fraction": "--test-fraction", "data.pool_fraction": "--pool-fraction",
                  "data.sample": "--sample", "train.folds": "--folds", "data.seed": "--seed",
                  "train.seed": "--seed"}


def simulate_config(args: argparse.Namespace) -> RunConfig:
    from relabeler.jobs.simulate import simulation_config

    base = load_config(args.config) if args.config else None
    if args.assignments:  # over the file, under simulate's own flags
        base = apply_overrides(base or RunConfig(), None, args.assignments,
                               earlier=args.config or "config")
    try:
        config = simulation_config(data=args.data, out=args.out, noise=args.noise,
                                   noise_kind=args.noise_kind, seed=args.seed,
                                   text_col=args.text_col, label_col=args.label_col,
                                   id_col=args.id_col, sample=args.sample, mode=args.mode,
                                   folds=args.folds, test_fraction=args.test_fraction,
                                   pool_fraction=args.pool_fraction,
                                   eval_noise=args.eval_noise, base=base,
                                   defaults={"data.pool_fraction": 0.2})
    except ConfigError as exc:
        message = str(exc)
        message = message.replace(  # a check across two keys
            "flag: [data] eval_fraction + pool_fraction",
            "--test-fraction + --pool-fraction ([data] eval_fraction + pool_fraction, from "
            "the flags, else --set or --config, else simulate's defaults 0.2 and 0.2)")
        for key, flag in SIMULATE_FLAGS.items():
            section, name = key.split(".")
            message = message.replace(f"flag: {key}:", f"{flag} ({key}):").replace(
                f"flag: [{section}] {name} ", f"{flag} ([{section}] {name}) ")
        raise ConfigError(message) from None
    return config


def _cmd_simulate(args: argparse.Namespace, config: RunConfig) -> int:
    from relabeler.jobs.simulate import markdown_table, run_simulation
    from relabeler.jobs.simulate_coverage import parse_undercover
    from relabeler.jobs.simulate_shortcut import parse_shortcut

    if args.undercover_keep is not None and not args.undercover:
        raise ConfigError(f"--undercover-keep {args.undercover_keep:g}: the share of the "
                          "held-out group left in train needs --undercover SPEC, the group")
    shortcut = parse_shortcut(args.shortcut) if args.shortcut else None
    keep = {} if args.undercover_keep is None else {"keep": args.undercover_keep}
    undercover = parse_undercover(args.undercover, **keep) if args.undercover else None
    result = run_simulation(config, args.out, force=args.force, progress=not args.quiet,
                            budgets=args.budgets, shortcut=shortcut,
                            annotators=args.annotators, undercover=undercover,
                            rounds=args.rounds)
    print(markdown_table(result))
    print(f"-> {Path(args.out) / 'simulation.json'}")
    return 0


COMMANDS = {"data": _cmd_data, "train": _cmd_train, "extract": _cmd_extract,
            "score": _cmd_score, "attribute": _cmd_attribute, "run": _cmd_run,
            "studio": _cmd_studio, "push": _cmd_push,
            "pull": _cmd_pull, "next": _cmd_next, "serve": _cmd_serve, "retrain": _cmd_retrain,
            "report": _cmd_report,
            "simulate": _cmd_simulate, "demo": _cmd_demo}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb == "init":
        try:
            return _cmd_init(args)
        except ConfigError as exc:
            parser.exit(2, f"relabeler: error: {exc}\n")
    _setup_logging(args.quiet)
    try:
        with _terminate_as_interrupt():
            if args.verb == "demo":
                config = demo_config(args)
            elif args.verb == "simulate":
                config = simulate_config(args)
            else:
                config = resolve_config(args)
            return COMMANDS[args.verb](args, config)
    except RelabelerError as exc:  # the user can fix it; anything else is a bug: traceback
        log.debug("failed", exc_info=True)
        print(f"relabeler: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        stopped = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"relabeler: {stopped}; nothing half-written is taken as finished: run it again "
              "(extract and attribute resume from their finished parts)", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a Kubernetes pod stopping), raised where Ctrl-C's
    KeyboardInterrupt would be: the same cleanup runs, and the same line says what to do."""


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While a verb runs in the main thread, SIGTERM raises :class:`Terminated` (Python's
    default is to die at once: no cleanup, no message); the previous handler comes back
    after. ``serve`` installs its own while its server runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
