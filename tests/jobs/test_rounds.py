"""Rounds without Label Studio: the lock, the answers' fingerprint, head-mode re-features.

The rounds themselves run against a real server in tests/plugin/test_rounds.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from relabeler import artifacts
from relabeler.errors import RoundLockedError, StoreError
from relabeler.jobs.extract import run_extract
from relabeler.jobs.retrain import run_retrain
from relabeler.jobs.rounds import (
    answers_fingerprint,
    head_features,
    rescore_version,
    round_lock,
)
from relabeler.jobs.train import run_train
from relabeler.store import RunStore
from tests.conftest import head_config


def test_a_second_round_stops_naming_the_lock_and_the_lock_goes_with_the_first(tmp_path):
    store = RunStore(tmp_path / "run")
    with round_lock(store):
        held = json.loads((tmp_path / "run/studio/round.lock").read_text())
        with pytest.raises(RoundLockedError, match=r"another round is running .*studio/round"
                                                   r"\.lock is held by process \d+"):
            with round_lock(store):
                pass
    assert held["host"] and isinstance(held["pid"], int)
    assert not store.exists(artifacts.ROUND_LOCK.path)


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, caplog):
    store = RunStore(tmp_path / "run")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with round_lock(store):
        host = json.loads((tmp_path / "run/studio/round.lock").read_text())["host"]
    store.write_json(artifacts.ROUND_LOCK.path, {"host": host, "pid": int(gone),
                                                 "started": "2026-01-01T00:00:00+00:00"})
    with round_lock(store):
        assert json.loads((tmp_path / "run/studio/round.lock").read_text())["pid"] != int(gone)
    assert "taking it over" in caplog.text


def test_a_lock_whose_write_failed_is_removed_and_an_old_unwritten_one_is_taken_over(
        tmp_path, monkeypatch):
    store = RunStore(tmp_path / "run")
    lock = tmp_path / "run/studio/round.lock"

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr("relabeler.store.os.fsync", full_disk)
        # the run directory's own create names the run and the lock
        with pytest.raises(StoreError, match=r"cannot create 'studio/round\.lock': .*No space "
                                             r"left"):
            with round_lock(store):
                pass
    assert not lock.exists()
    lock.write_text("")  # a writer killed between creating and writing it
    with pytest.raises(RoundLockedError, match="held by process [?]"):
        with round_lock(store):
            pass
    os.utime(lock, (time.time() - 120, time.time() - 120))
    with round_lock(store):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_the_answers_fingerprint_ignores_order_and_sees_a_new_answer():
    answers = pd.DataFrame({"id": ["a", "b"], "action": ["keep", "relabel"],
                            "new_label": ["x", "y"], "n_annotations": [1, 3]})
    assert answers_fingerprint(answers) == answers_fingerprint(answers.iloc[::-1])
    assert answers_fingerprint(answers.iloc[:0]) == "none"
    more = answers.assign(n_annotations=[2, 3])
    assert answers_fingerprint(more) != answers_fingerprint(answers)


@pytest.fixture(scope="module")
def tiny_encoders(tmp_path_factory, tiny_bert_dir, minilm_dir) -> dict[str, str]:
    """Tiny random DistilBERT and ELECTRA encoders (head mode retrains the layer before the
    final linear one) beside the tiny BERT, with MiniLM's tokenizer."""
    import torch
    from transformers import (
        AutoTokenizer,
        DistilBertConfig,
        DistilBertModel,
        ElectraConfig,
        ElectraModel,
    )

    out = {"bert": tiny_bert_dir}
    for name, model in (
            ("distilbert", lambda: DistilBertModel(DistilBertConfig(
                vocab_size=30522, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                max_position_embeddings=128))),
            ("electra", lambda: ElectraModel(ElectraConfig(
                vocab_size=30522, embedding_size=32, hidden_size=32, num_hidden_layers=2,
                num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)))):
        torch.manual_seed(0)
        folder = tmp_path_factory.mktemp(f"tiny-{name}")
        model().save_pretrained(folder)
        AutoTokenizer.from_pretrained(minilm_dir).save_pretrained(folder)
        out[name] = str(folder)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("family, extracted", [("bert", []), ("distilbert", []),
                                               ("electra", [])])
def test_head_mode_features_of_a_version_equal_a_real_extract(tmp_path, tiny_encoders,
                                                               synthetic_csv, ray_session,
                                                               family, extracted):
    # DistilBERT's, RoBERTa's and ELECTRA's head mode retrains the layer that makes the final
    # linear layer's input: the baseline's embeddings through the new final layer disagreed
    # with the version's model on every row. Their head runs on the cached encoder states (the
    # pool too: train never encodes it, but the baseline's head-mode extract put it in the cache)
    config = head_config(tmp_path / "run", synthetic_csv, tiny_encoders[family], max_length=48,
                         epochs=3)
    config.data.pool_fraction = 0.2
    store = RunStore(config.run_dir)
    run_train(store, config, progress=False)
    run_extract(store, config, progress=False)
    train = store.read_table(artifacts.TRAIN.path).to_pandas()
    other = {"pos": "neg", "neg": "pos"}
    corrections = pd.DataFrame({"id": train["id"][:30], "old_label": train["label"][:30],
                                "new_label": [other[x] for x in train["label"][:30]],
                                "action": ["relabel"] * 29 + ["drop"]})
    store.write_table(artifacts.CORRECTIONS.path, pa.Table.from_pandas(corrections,
                                                                       preserve_index=False))
    info = run_retrain(store, config, progress=False)
    version = RunStore(store.path(artifacts.RETRAIN(n=info["version"])))
    assert head_features(store, version, config) == extracted
    derived = {s: version.read_table(artifacts.FEATURES(split=s)).to_pandas().set_index("id")
               for s in ("train", "eval", "pool") if s not in extracted}
    assert all(not version.stage_done(f"extract.{s}") for s in extracted)
    run_extract(version, config, force=True, progress=False)
    baseline = store.read_table(artifacts.FEATURES(split="train")).to_pandas().set_index("id")
    for split, frame in derived.items():
        real = version.read_table(artifacts.FEATURES(split=split)).to_pandas().set_index("id")
        assert list(frame.index) == list(real.index)  # the version's rows, in its order
        np.testing.assert_allclose(np.stack(frame["embedding"]), np.stack(real["embedding"]),
                                   atol=1e-4)
        np.testing.assert_allclose(np.stack(frame["logits"]), np.stack(real["logits"]),
                                   atol=1e-4)
        assert (frame["pred"] == real["pred"]).all() and (frame["label"].fillna("")
                                                           == real["label"].fillna("")).all()
        np.testing.assert_allclose(frame["loss"].to_numpy(), real["loss"].to_numpy(),
                                   atol=1e-4)
    kept = derived["train"].index
    moved = np.abs(np.stack(derived["train"]["embedding"])
                   - np.stack(baseline.loc[kept, "embedding"])).max()
    assert (moved == 0) == (family == "bert")  # the BERT family's embedding is the baseline's
    # the dropped row left the training split; the relabeled ones carry their new label
    assert train["id"][29] not in derived["train"].index
    assert derived["train"].loc[train["id"][0], "label"] == other[train["label"][0]]


def test_a_retrain_whose_corrections_leave_a_class_too_few_rows_trains_fewer_folds(
        tmp_path, tiny_bert_dir, ray_session, caplog):
    # `next` stopped after the pull: "train.folds = 5 needs at least 5 training rows per class:
    # 'spam' has 4"
    source = tmp_path / "sms.csv"
    source.write_text("id,text,label\n" + "".join(
        f"r{i:02d},{'win a prize now' if i < 8 else 'see you at lunch'} {i},"
        f"{'spam' if i < 8 else 'ham'}\n" for i in range(50)))
    config = head_config(tmp_path / "run", source, tiny_bert_dir, max_length=16, epochs=2)
    config.data.pool_fraction = 0.0
    config.train.folds = 5
    store = RunStore(config.run_dir)
    run_train(store, config, progress=False)  # 5 or more spam rows: 5 folds are fine
    train = store.read_table(artifacts.TRAIN.path).to_pandas()
    spam = sorted(train.loc[train["label"] == "spam", "id"])
    assert len(spam) >= 5

    def answer(n_left: int) -> dict:
        changed = spam[:len(spam) - n_left]
        store.write_table(artifacts.CORRECTIONS.path, pa.table({
            "id": changed, "old_label": ["spam"] * len(changed),
            "new_label": ["ham"] * len(changed), "action": ["relabel"] * len(changed)}))
        return run_retrain(store, config, progress=False, folds=5)

    with caplog.at_level("WARNING", logger="relabeler.jobs.retrain"):
        info = answer(4)
    assert (info["folds"], info["folds_trained"]) == (5, 4)
    assert "after the corrections 'spam' has 4 training rows, fewer than train.folds = 5: " \
        "version 1 trains 4 out-of-fold models" in caplog.text
    version = RunStore(store.path(artifacts.RETRAIN(n=1)))
    oof = version.read_table(artifacts.OOF.path).to_pandas()
    assert sorted(oof["fold"].unique()) == [0, 1, 2, 3] and len(oof) == len(train)
    assert version.stage_info("train")["info"]["folds"] == 4
    assert run_retrain(store, config, progress=False, folds=5)["version"] == 1  # kept as done
    info = answer(1)  # one spam row left: no fold model could learn spam
    assert (info["version"], info["folds_trained"]) == (2, 0)
    assert "'spam' has 1 training row: a fold model that holds out a class's only row never " \
        "sees that class, so version 2 trains no out-of-fold models (train.folds = 5)" \
        in caplog.text
    assert not RunStore(store.path(artifacts.RETRAIN(n=2))).exists(artifacts.OOF.path)


@pytest.mark.parametrize("mode, left, calls", [
    ("windows", [], ["head"]),
    ("windows", ["pool"], ["head", ("extract", ["pool"])]),  # texts the cache lacks
    ("evidence", [], [("extract", ["train", "pool"])])])
def test_a_head_mode_version_reuses_the_baseline_embeddings_unless_it_chooses_its_windows(
        tmp_path, monkeypatch, mode, left, calls):
    # under `evidence` the new head picks other windows than the baseline's: a real extract
    done = []
    monkeypatch.setattr("relabeler.jobs.rounds.head_features",
                        lambda *a: done.append("head") or left)
    monkeypatch.setattr("relabeler.jobs.extract.run_extract",
                        lambda *a, splits, **k: done.append(("extract", splits)))
    monkeypatch.setattr("relabeler.jobs.score.run_score", lambda *a, **k: {"scored": True})
    base = RunStore(str(tmp_path))
    for split in ("train", "pool"):
        base.mark_done(f"extract.{split}", {})
    version = RunStore(str(tmp_path / "v1"))
    version.write_json(f"{artifacts.MODEL.path}/config.json",
                       {"relabeler_long_text": {"mode": mode, "stride": 4, "max_windows": 0}})
    version.mark_done("train", {"mode": "head"})
    assert rescore_version(base, version, None, progress=False) == {"scored": True}
    assert done == calls


def test_next_before_any_push_says_to_push_round_1(tmp_path, capsys):
    from relabeler.cli import main

    (tmp_path / "run").mkdir()  # a run that exists: a missing one is its own error
    assert main(["next", "--run", str(tmp_path / "run"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "nothing was pushed from" in err and "push round 1 first" in err
    assert not (tmp_path / "run/studio").exists()  # not even an empty folder for the lock


def test_next_with_a_batch_of_0_stops_before_pulling(tmp_path, capsys):
    # it pulled, built a dataset version and then said "every training row was sent already"
    from relabeler.cli import main

    (tmp_path / "run").mkdir()
    assert main(["next", "--run", str(tmp_path / "run"), "-q", "--batch", "0",
                 "--set", "studio.budget=0"]) == 2
    err = capsys.readouterr().err
    assert "loop.batch (--batch) is 0 and so is studio.budget" in err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []


# ---------------------------------------------------------------------------------------------
# `relabeler next` with its stages stubbed: the round's bookkeeping alone


class _Loop:
    """A run pushed once (tasks a, b, c of round 1) whose stages ``next`` calls are stubs: the
    pull writes ``self.answered`` as the corrections, a retrain makes a version ranking the
    rows x1.. first, and the push records the plan (``self.push_fails``: it dies after writing
    its pending rows)."""

    def __init__(self, tmp_path, monkeypatch, *, second_opinions: int = 0):
        from types import SimpleNamespace

        from relabeler.config import RunConfig
        from relabeler.plugin.push import _pending_rows
        from relabeler.plugin.rounds import RoundPush
        from relabeler.queue_plan import read_manifest, write_manifest

        self.store = store = RunStore(tmp_path / "run")
        self.config = RunConfig(run_dir=str(tmp_path / "run"))
        self.config.loop.batch = 2
        self.config.studio.control_share = 0.0
        self.config.studio.second_opinions = second_opinions
        self.train_ids = ["a", "b", "c", *[f"x{i}" for i in range(1, 9)]]
        write_manifest(store, pd.DataFrame({
            "id": ["a", "b", "c"], "task_id": pd.array([1, 2, 3], dtype="Int64"),
            "project_id": 7, "rank": pd.array([1, 2, 3], dtype="Int64"),
            "priority": np.array([1, 2, 3]), "source": "flagged",
            "pushed_at": pd.Series([pd.Timestamp("2026-01-01", tz="UTC")] * 3,
                                   dtype="datetime64[us, UTC]"), "round": 1}))
        self.answered: list[str] = []
        self.retrains: list[int] = []
        self.folds: list[int | None] = []
        self.push_fails = False
        self.events: list[tuple] = []
        loop = self

        def pull(store, client, *, page_size, consensus):
            loop.events.append(("pull",))
            rows = pd.DataFrame({"id": loop.answered, "old_label": "neg", "new_label": "pos",
                                 "action": "relabel", "n_annotations": 1, "source": "flagged"})
            store.write_table(artifacts.CORRECTIONS.path,
                              pa.Table.from_pandas(rows, preserve_index=False))
            return SimpleNamespace(tasks_changed=1)

        def retrain(store, config, **kwargs):
            number = len(loop.retrains) + 1
            loop.retrains.append(number)
            loop.folds.append(kwargs.get("folds"))
            version = RunStore(store.path(artifacts.RETRAIN(n=number)))
            n = len(loop.train_ids)
            version.write_table(artifacts.TRAIN.path, pa.table(
                {"id": loop.train_ids, "text": ["t"] * n, "label": ["neg"] * n}))
            version.write_table(artifacts.SUSPECTS.path, pa.Table.from_pandas(pd.DataFrame(
                {"id": loop.train_ids[::-1], "rank": range(1, n + 1),
                 "suspect_score": np.float32(0.5), "given_label": "neg",
                 "suggested_label": "pos", "suggested_confidence": np.float32(0.5),
                 "reasons": [[]] * n, "duplicate_ids": [[]] * n}), preserve_index=False))
            version.write_json("comparison.json", {})  # what a complete version writes last
            return {"version": number}

        def push_round(store, client, evidence, plan, *, round_no, waiting, **kwargs):
            manifest = read_manifest(store)
            new = plan[~plan["id"].isin(set(manifest["id"]))]
            manifest = pd.concat([manifest, _pending_rows(new, 7, round_no)],
                                 ignore_index=True)
            write_manifest(store, manifest)
            if loop.push_fails:
                raise ConnectionError("the server went away mid-push")
            manifest["task_id"] = pd.array(range(1, len(manifest) + 1), dtype="Int64")
            write_manifest(store, manifest)
            loop.events.append(("push_round", round_no))
            flagged = int((new["source"] == "flagged").sum())
            return RoundPush(project_id=7, round=round_no, new_flagged=flagged,
                             new_controls=len(new) - flagged, waiting_before=waiting,
                             total_tasks=len(manifest), seconds=0.0)

        def second_opinions(store, client, **kwargs):
            loop.events.append(("second_opinions", kwargs.get("round_no", 1)))

        monkeypatch.setattr("relabeler.plugin.pull.pull", pull)
        monkeypatch.setattr("relabeler.plugin.projects.default_title", lambda store: "t")
        monkeypatch.setattr("relabeler.plugin.second_opinion.push_second_opinions",
                            second_opinions)
        monkeypatch.setattr("relabeler.plugin.rounds.check_project", lambda *a, **k: None)
        monkeypatch.setattr("relabeler.plugin.rounds.push_round", push_round)
        monkeypatch.setattr("relabeler.jobs.retrain.run_retrain", retrain)
        monkeypatch.setattr("relabeler.jobs.rounds.rescore_version", lambda *a, **k: {})
        monkeypatch.setattr("relabeler.jobs.attribute.attribute_plan", lambda *a, **k: None)
        monkeypatch.setattr("relabeler.plugin.evidence.RunEvidence.load",
                            classmethod(lambda cls, *a, **k: None))
        monkeypatch.setattr("relabeler.report.rounds.queue_test",
                            lambda *a, **k: {"available": False})

    def next(self):
        from relabeler.jobs.rounds import run_next

        return run_next(self.store, self.config, client=object(), progress=False,
                        say=lambda message: None)


def test_answers_that_arrive_after_a_round_died_make_the_round_after_its_resume(
        tmp_path, monkeypatch):
    from relabeler.jobs.rounds import read_rounds

    loop = _Loop(tmp_path, monkeypatch)
    loop.answered = ["a", "b"]
    loop.push_fails = True
    with pytest.raises(ConnectionError):
        loop.next()  # round 2 planned on version 1 (answers a, b), died mid-push
    assert loop.retrains == [1]
    loop.answered = ["a", "b", "c"]  # c arrives after the crash
    loop.push_fails = False
    resumed = loop.next()
    assert (resumed.round, resumed.version) == (2, 1) and loop.retrains == [1]
    ab = answers_fingerprint(pd.DataFrame({"id": ["a", "b"], "action": "relabel",
                                           "new_label": "pos", "n_annotations": 1}))
    assert read_rounds(loop.store)[-1]["answers_fingerprint"] == ab
    assert read_rounds(loop.store)[-1]["answers"] == 2  # trained on a and b, not c
    third = loop.next()  # c is new to every version: round 3 retrains with it
    assert (third.round, third.version) == (3, 2) and loop.retrains == [1, 2]


def test_second_opinions_go_after_the_rounds_push_and_never_in_a_round_without_answers(
        tmp_path, monkeypatch):
    loop = _Loop(tmp_path, monkeypatch, second_opinions=2)
    loop.answered = ["a"]
    assert loop.next().round == 2
    assert loop.events == [("pull",), ("push_round", 2), ("second_opinions", 2)]
    loop.events.clear()
    idle = loop.next()
    assert idle.round is None and "no new answers since round 2" in idle.message
    assert loop.events == [("pull",)]  # nothing sent by a round that does nothing


def test_two_rounds_finding_the_same_stale_lock_one_takes_it_over_the_other_stops(
        tmp_path, monkeypatch):
    import socket
    import threading

    from relabeler.locks import pid_alive

    store = RunStore(tmp_path / "run")
    lock = tmp_path / "run/studio/round.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": 2 ** 22 + 12345,
                                "started": "2026-01-01T00:00:00+00:00"}))  # left by a crash
    inside, refused = [], []
    b_inside = threading.Event()

    def other_round():
        try:
            with round_lock(store):
                inside.append("A")
                b_inside.wait(3.0)  # still inside when B gets in, if B ever does
        except RoundLockedError:
            refused.append("A")

    def racing(pid):
        # B has read the dead holder; A runs its whole takeover now (given a second)
        monkeypatch.setattr("relabeler.locks.pid_alive", pid_alive)
        a = threading.Thread(target=other_round)
        a.start()
        a.join(1.0)
        racing.a = a
        return pid_alive(pid)

    monkeypatch.setattr("relabeler.locks.pid_alive", racing)
    try:
        with round_lock(store):
            inside.append("B")
            b_inside.set()
            racing.a.join(5.0)  # A tries while B holds the lock
            held = json.loads(lock.read_text())
    except RoundLockedError:
        refused.append("B")
    racing.a.join(5.0)
    # B judged the holder under the takeover guard: A waited, then found B's live lock
    assert (inside, refused) == (["B"], ["A"])
    assert held["pid"] == os.getpid() and not lock.exists()


def test_a_round_leaves_a_lock_that_no_longer_names_it(tmp_path, caplog):
    store = RunStore(tmp_path / "run")
    lock = tmp_path / "run/studio/round.lock"
    other = {"host": "elsewhere", "pid": 4242, "started": "2026-01-01T00:00:00+00:00"}
    with round_lock(store):
        lock.write_text(json.dumps(other))  # taken over meanwhile (it judged this one gone)
    assert json.loads(lock.read_text()) == other
    assert "no longer names this process" in caplog.text


def test_a_round_retrains_with_the_baselines_folds_unless_folds_are_given(tmp_path,
                                                                           monkeypatch):
    # `train --folds 3`, then `next` with relabeler.toml's folds = 0 (the default): the round
    # trained no fold model, and its noise estimate collapsed (12% of wrong labels read as 0.7%)
    from relabeler.config import apply_overrides
    from relabeler.jobs.rounds import round_folds

    loop = _Loop(tmp_path, monkeypatch)
    loop.store.mark_done("train", {"settings": {"train": {"folds": 3}}})
    loop.answered = ["a"]
    assert loop.next().round == 2 and loop.folds == [3]
    assert round_folds(loop.store, apply_overrides(loop.config, None, ["train.folds=0"])) == 0
    loop.store.mark_done("train", {})  # a marker from before settings were recorded
    assert round_folds(loop.store, type(loop.config)()) == 0
