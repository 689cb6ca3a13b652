"""``relabeler next``: one more round of the loop, chosen with what people have answered.

A round, in order:

1. lock: ``studio/round.lock`` is created exclusively; a second round started meanwhile stops
   with a :class:`~relabeler.errors.RoundLockedError` naming the file and its holder.
2. pull: the answers so far (incremental; answers that arrive while the round runs are taken
   by the next pull). No new answers since the last round: nothing else happens.
3. retrain: the corrections make dataset version N (``retrain/vN/``), trained with the
   baseline's settings and its out-of-fold models (head mode: seconds on cached encoder
   states); fewer fold models, or none, where the corrections left a class with fewer rows
   than ``train.folds`` (:func:`relabeler.jobs.retrain.version_folds`, logged).
4. re-score version N: its features (head mode, the encoder being frozen: the baseline's
   embeddings through the new final layer where that layer is all the head trains, else the
   new head on the cached encoder states, or a new extract of a split the cache lacks
   (:func:`head_features`); full mode: a new extract) and its suspects. Reviewed rows
   carry their answered labels, so the noise model and the neighbours' votes read them.
5. plan (:func:`relabeler.queue_plan.plan_next_round`): the top of the new ranking among the
   rows never sent, with its own random controls, behind every task still waiting. When the
   latest round's flagged tasks were corrected no more often than the controls
   (:func:`relabeler.report.rounds.queue_test`), the batch is random picks instead.
6. attribute exactly the planned tasks in version N, and push them into the same review
   project (:func:`relabeler.plugin.rounds.push_round`): task data and manifest rows record
   the round. With ``studio.second_opinions``, the second-opinion tasks follow (the pull of
   step 2 sends none, so a round without new answers sends nothing); the manifest records
   them under this round.
7. record the round in ``studio/rounds.json``.

Reviewed rows never return to the queue: every sample in the manifest is skipped. A sample
whose answers disagree (``needs_review``) keeps its task; asking another annotator is the
second-opinion path, not a new task. A rerun after a failure resumes: retrain and score are
skipped when done for the same answers, the plan of an unfinished round is read back, and the
push reconciles against the server. A resumed round records the answers its dataset version was
trained on (kept with the plan), so answers that arrived after it died make the next round.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd

from relabeler import artifacts
from relabeler.config import RunConfig
from relabeler.corrections import split_eval_answers
from relabeler.errors import ConfigError, RoundError, RoundLockedError
from relabeler.locks import LEASE_TTL_S, Lease, describe_holder, lock_holder_gone, read_lock_holder
from relabeler.queue_plan import (
    plan_next_round,
    read_manifest,
    read_plan,
    write_plan,
)
from relabeler.store import RunStore

log = logging.getLogger(__name__)

RANKED, RANDOM = "ranked", "random"


@dataclass(frozen=True)
class RoundResult:
    """What one ``relabeler next`` did. ``round`` is None when it did nothing (``message``)."""

    round: int | None
    message: str
    version: int | None = None
    mode: str | None = None
    new_flagged: int = 0
    new_controls: int = 0
    waiting_before: int = 0
    answers: int = 0
    new_answers: int = 0
    queue_test: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# the lock


@contextmanager
def _takeover_guard(local: Path) -> Iterator[None]:
    """Serialise taking over a stale lock between the processes of this host (an exclusive
    flock on the lock's folder): the holder is read, judged and replaced by one process at a
    time, so two cannot both take it over, nor one remove the lock the other just wrote."""
    fd = os.open(local.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


@contextmanager
def round_lock(store: RunStore) -> Iterator[None]:
    """Hold ``studio/round.lock`` for the block. A lock left by a dead process of this host is
    taken over (logged): on a local run directory the holder is read, judged and replaced
    under an exclusive flock, so of two processes that find the same stale lock one takes it
    over and the other stops. Any other holder makes this raise RoundLockedError. On leaving,
    the lock is removed only if it still names this process. On a remote run directory the
    lock is a :class:`~relabeler.locks.Lease` (created by a conditional write, renewed while
    the round runs, taken over once its holder stops renewing it)."""
    path = artifacts.ROUND_LOCK.path
    local = store.local_path(path)
    if local is None:
        lease = Lease(store, path, what="next")
        other = lease.acquire()
        if other is not None:
            _locked(store, path, other)
        try:
            yield
        finally:
            lease.release()
        return
    holder = {"host": socket.gethostname(), "pid": os.getpid(),
              "started": datetime.now(UTC).isoformat()}
    try:
        store.create_exclusive(path, json.dumps(holder).encode())
    except FileExistsError:
        with _takeover_guard(local):
            other = read_lock_holder(store, path)
            if not store.exists(path):
                pass  # its holder finished meanwhile: free
            elif not lock_holder_gone(other, local):
                _locked(store, path, other)
            else:
                log.warning("next: %s was left by process %s, which is gone; taking it over",
                            store.path(path), other.get("pid", "(unwritten lock)"))
                store.remove(path)
            try:
                store.create_exclusive(path, json.dumps(holder).encode())
            except FileExistsError:  # a round started in between (it created the lock)
                _locked(store, path, read_lock_holder(store, path))
    try:
        yield
    finally:
        if read_lock_holder(store, path) == holder:
            store.remove(path)
        else:
            log.warning("next: %s no longer names this process (it was taken over or "
                        "replaced); left as it is", store.path(path))


def round_folds(store: RunStore, config: RunConfig) -> int:
    """The fold models a round's retrain trains: ``train.folds`` where it was given (file,
    ``--set``), else the baseline's (``train --folds K``, recorded in its marker): a round
    without them would score on the model's own probabilities alone, and its noise estimate
    would collapse (a 3-fold baseline's 12% of wrong labels read as 0.7%)."""
    if "folds" in config.train.model_fields_set:
        return config.train.folds
    recorded = ((store.stage_info("train") or {}).get("info", {}).get("settings", {})
                .get("train", {}).get("folds"))
    return int(recorded) if recorded is not None else config.train.folds


def _locked(store: RunStore, path: str, other: dict) -> NoReturn:
    raise RoundLockedError(
        f"another round is running on {store.uri}: {store.path(path)} is held by "
        f"{describe_holder(other)}. Wait for it to finish (delete the file only if "
        f"that process is gone{_lease_note(other)}); nothing was pulled or pushed") from None


def _lease_note(holder: dict) -> str:
    if "renewed" not in holder:
        return ""
    return (f"; it renewed its lease at {holder['renewed']}, and one not renewed for "
            f"{LEASE_TTL_S:g} s is taken over")


# ---------------------------------------------------------------------------------------------
# the rounds record


def read_rounds(store: RunStore) -> list[dict]:
    """``studio/rounds.json``'s records, oldest first; [] before the first ``next``."""
    if not store.exists(artifacts.ROUNDS.path):
        return []
    return list(store.read_json(artifacts.ROUNDS.path)["rounds"])


def answers_fingerprint(corrections: pd.DataFrame) -> str:
    """What the answers are: sample, action, label and number of answers, order aside."""
    if corrections.empty:
        return "none"
    count = (corrections["n_annotations"] if "n_annotations" in corrections.columns
             else pd.Series(1, index=corrections.index))
    rows = sorted(zip(corrections["id"].astype(str), corrections["action"].astype(str),
                      corrections["new_label"].astype(str), count.astype(str), strict=True))
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def _training_answers(store: RunStore) -> pd.DataFrame:
    if not store.exists(artifacts.CORRECTIONS.path):
        return pd.DataFrame(columns=["id", "action", "new_label", "old_label"])
    eval_ids = (set(store.read_table(artifacts.EVAL.path, columns=["id"]).column("id")
                    .to_pylist()) if store.exists(artifacts.EVAL.path) else set())
    frame, _ = split_eval_answers(store.read_table(artifacts.CORRECTIONS.path).to_pandas(),
                                  eval_ids)  # eval-audit answers, as retrain tells them
    return frame.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# re-scoring a dataset version


def head_features(base: RunStore, version: RunStore, config: RunConfig) -> list[str]:
    """``features/{train,eval,pool}`` of a head-mode version without an extract, for each
    split the baseline extracted; returns the splits left to a real extract (nothing written
    for them).

    The encoder is frozen in head mode. Where the head trains its final linear layer alone
    (:func:`relabeler.model.head_is_final_linear`: the BERT family), each row's embedding (that
    layer's input) is the baseline's, and only the new head's logits, probabilities, prediction
    and loss (against the version's labels) are computed; acquired pool rows that joined the
    training set take their pool features. Where head mode trains the layers before it too
    (DistilBERT's ``pre_classifier``, RoBERTa's and ELECTRA's ``classifier.dense``), the
    baseline's embeddings are not the version's: the version's head runs on the frozen
    encoder's states from the ``[model] cache_dir`` cache (training filled it with the training
    and eval texts), and a split with a text the cache lacks (the pool, or any split with the
    cache off) is left to extract."""
    from relabeler.jobs.extract import SPLITS, features_table
    from relabeler.model import final_linear, head_is_final_linear, load_classifier

    classes = version.read_json(artifacts.LABELS.path)
    index = {c: i for i, c in enumerate(classes)}
    model_dir = str(version.get_dir(artifacts.MODEL.path))
    model = load_classifier(model_dir)
    reuse = head_is_final_linear(model)
    splits = [s for s in SPLITS if base.stage_done(f"extract.{s}")]
    if not splits:
        return []
    columns = ["id", "embedding", "n_tokens"] if reuse else ["id", "n_tokens"]
    frames = [base.read_table(artifacts.FEATURES(split=s), columns=columns).to_pandas()
              for s in splits]
    known = pd.concat(frames, ignore_index=True).drop_duplicates("id").set_index("id")
    head = final_linear(model)
    run_head = None if reuse else _cached_head(version, model, model_dir, config)
    tables, left = {}, []
    for split in splits:
        rows = version.read_table(artifacts.SPLIT(split=split),
                                  columns=["id", "label"] + ([] if reuse else ["text"]))
        ids = rows.column("id").to_pylist()
        labels = rows.column("label").to_pylist()
        missing = [i for i in ids if i not in known.index]
        if missing:
            raise RoundError(f"the baseline's features lack rows of version {version.uri}'s "
                             f"{split} split ({missing[:5]}); rerun `relabeler extract`")
        picked = known.loc[ids]
        if not ids:
            embedding = np.zeros((0, head.in_features), np.float32)
            logits = np.zeros((0, len(classes)), np.float32)
        elif reuse:
            embedding = np.stack(picked["embedding"].to_numpy()).astype(np.float32)
            logits = (embedding @ head.weight.detach().float().numpy().T
                      + head.bias.detach().float().numpy())
        else:
            found = run_head([str(t) for t in rows.column("text").to_pylist()])
            if found is None:
                left.append(split)
                continue
            embedding, logits = found
        tables[split] = features_table(ids, labels, _head_outputs(
            embedding, logits, labels, index, picked["n_tokens"]), classes)
    for split, table in tables.items():
        folder = artifacts.FEATURES(split=split)
        version.reset_stage(f"extract.{split}", [folder])
        version.write_shard(folder, 0, table)
        version.mark_done(f"extract.{split}", {"rows": table.num_rows, "from": base.uri,
                                               "head_only": True,
                                               "encoder_cache": not reuse})
    return left


def _cached_head(version: RunStore, model, model_dir: str, config: RunConfig):
    """A function of a split's texts: the embeddings and logits of ``model`` (the version's)
    from the frozen encoder's cached states, or None when the cache lacks a text (or is off, or
    the model reads windows, whose states head mode pools through a head linear in them)."""
    import torch

    from relabeler.encoder_cache import EncoderCache, cache_root
    from relabeler.long_text import recorded_long_text
    from relabeler.model import (
        FeatureCapture,
        head_spec,
        load_tokenizer,
        pick_device,
        trained_max_length,
    )

    saved = version.read_json(f"{artifacts.MODEL.path}/config.json")
    read = recorded_long_text(saved)
    root = cache_root(config.model.cache_dir)
    if read.windowed or root is None:
        return lambda texts: None
    device = pick_device()
    cache = EncoderCache(root, model, load_tokenizer(model_dir),
                         trained_max_length(saved, config.model, "next"),
                         read.cache_tag(), max_gb=config.model.cache_max_gb)
    spec = head_spec(model)
    model.to(device).eval()

    def outputs(texts: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
        states = cache.cached(texts, device=device)
        if states is None:
            return None
        capture = FeatureCapture(model)
        embedding, logits = [], []
        try:
            with torch.inference_mode():
                for i in range(0, len(states), 4096):
                    logits.append(spec.forward(model, states[i:i + 4096].to(device)).float()
                                  .cpu())
                    embedding.append(capture.pop().float().cpu())
        finally:
            capture.remove()
        return torch.cat(embedding).numpy(), torch.cat(logits).numpy()

    return outputs


def _head_outputs(embedding: np.ndarray, logits: np.ndarray, labels: list, index: dict,
                  n_tokens: pd.Series) -> dict[str, np.ndarray]:
    """The columns of :func:`relabeler.jobs.extract.features_table` from a head's input and
    logits: probabilities, prediction and loss against ``labels`` (NaN without one)."""
    import torch

    log_probs = torch.log_softmax(torch.from_numpy(logits), dim=-1).numpy()
    label_ids = np.array([index.get(x, -1) if x is not None else -1 for x in labels],
                         dtype=np.int64)
    loss = np.where(label_ids >= 0,
                    -log_probs[np.arange(len(labels)), np.clip(label_ids, 0, None)], np.nan)
    return {"embedding": embedding, "logits": logits.astype(np.float32),
            "probs": np.exp(log_probs).astype(np.float32),
            "pred": logits.argmax(1).astype(np.int64) if len(labels) else np.zeros(0, np.int64),
            "loss": loss.astype(np.float32),
            "n_tokens": n_tokens.to_numpy(dtype=np.int32)}


def rescore_version(store: RunStore, version: RunStore, config: RunConfig, *,
                    progress: bool = True) -> dict:
    """Features and scores of a dataset version (skipped when its score is done): head mode
    derives what it can from the baseline (:func:`head_features`), the rest is extracted."""
    from relabeler.jobs.extract import SPLITS, run_extract
    from relabeler.jobs.score import run_score
    from relabeler.long_text import recorded_long_text

    if version.stage_done("score"):
        return version.stage_info("score")["info"]
    saved = version.read_json(f"{artifacts.MODEL.path}/config.json")
    splits = [s for s in SPLITS if store.stage_done(f"extract.{s}")]
    # under `evidence` each model chooses its own window: the baseline's embedding of the
    # window its head chose is not the new head's sample
    if (version.stage_info("train")["info"]["mode"] == "head"
            and recorded_long_text(saved).mode != "evidence"):
        splits = head_features(store, version, config)
        if not splits:
            return run_score(version, config, force=True)
        log.info("next: extracting %s of %s (the encoder cache lacks texts of them)",
                 ", ".join(splits), version.uri)
    run_extract(version, config, force=True, progress=progress, splits=splits)
    return run_score(version, config, force=True)


# ---------------------------------------------------------------------------------------------
# the round


def _timed(seconds: dict, name: str, say: Callable[[str], None], fn: Callable[[], object]):
    started = time.perf_counter()
    say(f"[{name}] ...")
    out = fn()
    seconds[name] = round(time.perf_counter() - started, 2)
    return out


def run_next(store: RunStore, config: RunConfig, *, client=None, progress: bool = True,
             say: Callable[[str], None] = log.info) -> RoundResult:
    """One round (see the module docstring); returns what it did."""
    from relabeler.jobs.attribute import attribute_plan
    from relabeler.jobs.retrain import run_retrain
    from relabeler.plugin.connect import client_from_config
    from relabeler.plugin.evidence import RunEvidence
    from relabeler.plugin.projects import default_title
    from relabeler.plugin.pull import run_pull
    from relabeler.plugin.rounds import check_project, push_round, review_project_id
    from relabeler.plugin.second_opinion import push_second_opinions
    from relabeler.report.rounds import NO_BETTER, UNDECIDED, queue_test

    if (config.loop.batch or config.studio.budget) <= 0:  # checked before anything is pulled
        raise ConfigError("loop.batch (--batch) is 0 and so is studio.budget, which it "
                          "defaults to: a round would add no review task; set either above 0")
    seconds: dict[str, float] = {}
    nothing_pushed = (f"nothing was pushed from {store.uri}: push round 1 first "
                      f"(`relabeler push --run {store.uri}`)")
    if not store.exists(artifacts.MANIFEST.path):  # before the lock makes studio/
        raise RoundError(nothing_pushed)
    with round_lock(store):
        manifest = read_manifest(store)
        if manifest.empty:
            raise RoundError(nothing_pushed)
        rounds = read_rounds(store)
        last = int(manifest["round"].max())
        recorded = {int(r["round"]) for r in rounds}
        resuming = last > 1 and last not in recorded  # a round that died before its record
        round_no = last if resuming else last + 1
        client = client or client_from_config(config.studio)
        check_project(client, review_project_id(manifest), last, manifest)
        pulled = _timed(seconds, "pull", say, lambda: run_pull(store, config, client=client,
                                                               second_opinions=False))
        answers = _training_answers(store)
        fingerprint = answers_fingerprint(answers)
        before = rounds[-1]["answers_fingerprint"] if rounds else "none"
        if not resuming and fingerprint == before:
            message = (f"no new answers since round {last}; nothing to do" if rounds or last > 1
                       else "no answers to round 1 yet; nothing to do")
            say(f"[next] {message}")
            return RoundResult(round=None, message=message, answers=len(answers),
                               seconds=seconds)
        started = _started_round(store, round_no) if resuming else None
        if started is not None:
            # the round's plan and scores stand; answers since wait for the next round, so
            # the record keeps the answers the version was trained on, not today's
            info, version = {"version": started[0]}, started[1]
            say(f"[next] resuming round {round_no} from dataset version {started[0]}")
            fingerprint, trained_on = _trained_answers(store, version, fingerprint,
                                                       len(answers))
        else:
            trained_on = len(answers)
            info = _timed(seconds, "retrain", say, lambda: run_retrain(
                store, config, progress=progress, folds=round_folds(store, config)))
            version = RunStore(store.path(artifacts.RETRAIN(n=info["version"])))
            _timed(seconds, "score", say, lambda: rescore_version(store, version, config,
                                                                  progress=progress))
        earlier = manifest[manifest["round"] < round_no]
        test = queue_test(earlier, answers, alpha=config.loop.fallback_alpha)
        random_fill = bool(config.loop.random_fallback and test["available"]
                           and test["decisive"] and not test["beats_random"])
        plan, random_fill = _round_plan(version, config, earlier, round_no, resuming,
                                        random_fill, (fingerprint, trained_on))
        mode = RANDOM if random_fill else RANKED
        if test["available"] and (random_fill or not test["decisive"]):
            say(f"[next] round {test['round']}'s flagged tasks: {test['flagged']['rate']:.0%} "
                f"of {test['flagged']['answered']} corrected, random controls "
                f"{test['controls']['rate']:.0%} of {test['controls']['answered']} (one-sided "
                f"Fisher p = {test['p_value']:.2f}). {NO_BETTER if random_fill else UNDECIDED}")
        waiting = _waiting(earlier, answers)
        if plan.empty:
            message = (f"every training row was sent already; round {round_no} has nothing to "
                       f"push")
            say(f"[next] {message}")
            return RoundResult(round=None, message=message, version=info["version"],
                               answers=len(answers), seconds=seconds)
        _timed(seconds, "attribute", say, lambda: attribute_plan(version, config, plan,
                                                                 progress=progress))
        evidence = RunEvidence.load(version, examples=config.studio.examples, needed_by="next")
        pushed = _timed(seconds, "push", say, lambda: push_round(
            store, client, evidence, plan, round_no=round_no, waiting=waiting,
            top_spans=config.studio.top_spans, batch_size=config.studio.batch_size,
            progress=progress))
        if config.studio.second_opinions:
            # after the round's own push (a rerun resumes both), never in a round that does
            # nothing: the tasks count as this round's
            _timed(seconds, "second opinions", say, lambda: push_second_opinions(
                store, client, project_title=config.studio.project_title or default_title(store),
                count=config.studio.second_opinions, examples=config.studio.examples,
                top_spans=config.studio.top_spans, batch_size=config.studio.batch_size,
                progress=progress, round_no=round_no))
        n_flagged = int((plan["source"] == "flagged").sum())
        earlier_run = len(plan) - pushed.new_flagged - pushed.new_controls
        result = RoundResult(
            round=round_no, version=info["version"], mode=mode,
            message=(f"round {round_no}: {n_flagged} flagged + {len(plan) - n_flagged} "
                     f"random-control tasks pushed ({mode})"
                     + (f", {earlier_run} of them by a run of this round that was stopped;"
                        if earlier_run > 0 else "")
                     + f" behind {waiting} still waiting, scored on dataset version "
                       f"{info['version']}"),
            new_flagged=pushed.new_flagged, new_controls=pushed.new_controls,
            waiting_before=waiting, answers=len(answers),
            new_answers=pulled.tasks_changed, queue_test=test, seconds=seconds)
        rounds.append({"round": round_no, "version": info["version"], "mode": mode,
                       "pushed": {"flagged": n_flagged,
                                  "random_control": len(plan) - n_flagged},
                       "waiting_before": waiting, "answers": trained_on,
                       "answers_fingerprint": fingerprint, "queue_test": test,
                       "finished_at": datetime.now(UTC).isoformat(), "seconds": seconds})
        store.write_json(artifacts.ROUNDS.path, {"rounds": rounds})
        say(f"[next] {result.message}")
        return result


def _waiting(manifest: pd.DataFrame, answers: pd.DataFrame) -> int:
    review = manifest[manifest["source"].isin(["flagged", "random_control"])]
    return int((~review["id"].isin(set(answers["id"]))).sum())


def _started_round(store: RunStore, round_no: int) -> tuple[int, RunStore] | None:
    """The dataset version whose ``queue/plan.parquet`` is round ``round_no``'s (a round that
    died after planning), the newest first; None where none is."""
    from relabeler.jobs.retrain import dataset_versions

    for number in reversed(dataset_versions(store)):
        version = RunStore(store.path(artifacts.RETRAIN(n=number)))
        saved = read_plan(version)
        if saved is not None and saved[1].get("round") == round_no:
            return number, version
    return None


def _trained_answers(store: RunStore, version: RunStore, current: str, count: int
                     ) -> tuple[str, int]:
    """The answers' fingerprint and count of a resumed round: those of the answers its dataset
    version was trained on (recorded with the round's plan), so answers that arrived after the
    round died count as new for the next round. A plan written before they were recorded: the
    current answers' (``current``, ``count``) when the version's provenance names the current
    corrections, else "unknown" (the next round then retrains: nothing is left unused)."""
    from relabeler.corrections import corrections_fingerprint

    saved = read_plan(version)
    recorded = saved[1] if saved is not None else {}
    count = int(recorded.get("answers", count))
    if recorded.get("answers_fingerprint"):
        return str(recorded["answers_fingerprint"]), count
    provenance = (version.stage_info("data") or {}).get("info", {})
    if store.exists(artifacts.CORRECTIONS.path) and provenance.get("corrections") == \
            corrections_fingerprint(store.read_table(artifacts.CORRECTIONS.path)):
        return current, count
    log.warning("next: dataset version %s does not record the answers it was trained on; "
                "the next round retrains with every answer", version.uri)
    return "unknown", count


def _round_plan(version: RunStore, config: RunConfig, manifest: pd.DataFrame, round_no: int,
                resuming: bool, random_fill: bool, trained: tuple[str, int]
                ) -> tuple[pd.DataFrame, bool]:
    """The round's plan and whether it is random picks: read back when the round is being
    resumed, else made from ``manifest`` (the earlier rounds) and written to the version's
    ``queue/plan.parquet`` with ``trained``: the fingerprint and the number of the answers the
    version was trained on."""
    if resuming:
        saved = read_plan(version)
        if saved is None or saved[1].get("round") != round_no:
            raise RoundError(f"round {round_no} was started but its plan is not in "
                             f"{version.uri}/{artifacts.PLAN.path}; its tasks in the manifest "
                             f"stay as they are")
        return saved[0], bool(saved[1].get("random_fill"))
    ranking = version.read_table(artifacts.SUSPECTS.path, columns=["id", "rank"]).to_pandas()
    train_ids = version.read_table(artifacts.TRAIN.path, columns=["id"]).column("id").to_pylist()
    batch = config.loop.batch or config.studio.budget
    plan = plan_next_round(ranking, train_ids, manifest, batch=batch,
                           control_share=config.studio.control_share, seed=config.studio.seed,
                           round_no=round_no, random_fill=random_fill)
    write_plan(version, plan, {"round": round_no, "batch": batch,
                               "control_share": config.studio.control_share,
                               "seed": config.studio.seed, "random_fill": random_fill,
                               "answers_fingerprint": trained[0], "answers": trained[1]})
    return plan, random_fill


def round_summary(result: RoundResult) -> dict:
    """The result as plain data (the CLI prints it; the demo keeps it)."""
    return asdict(result)


__all__ = ["RoundResult", "run_next", "round_lock", "read_rounds", "rescore_version",
           "head_features", "answers_fingerprint", "round_summary"]
