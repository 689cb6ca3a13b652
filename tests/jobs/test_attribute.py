"""attribute: the Ray job attributes the queue's top N, writes parts and the table, resumes."""

import copy
import time

import numpy as np
import pytest

from relabeler.config import AttributeConfig, RunConfig
from relabeler.jobs import StageError
from relabeler.jobs.attribute import (
    SCHEMA,
    AttributionWorker,
    plan_queue,
    queue_rows,
    run_attribute,
)
from relabeler.store import RunStore
from tests.jobs._scored_run import make_scored_run

TOP = 6


def _settings(**overrides) -> AttributeConfig:
    values = dict(top=TOP, method="ig", n_steps=4, internal_batch_size=0, batch_size=4,
                  shard_size=5, num_actors=0, num_threads=0)
    values.update(overrides)
    return AttributeConfig(**values)


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory, tiny_bert_dir, ray_session):
    def unicode_text(frame):
        frame.loc[frame.index[7], "text"] = "Héllo wörld 😀 don't\r\n  stop   the music!"

    store, config, _ = make_scored_run(tmp_path_factory.mktemp("attribute"), tiny_bert_dir,
                                       rows=100, flipped=6, epochs=5, acquire_budget=4,
                                       evidence_top=10, min_agreement=0.0,
                                       edit_frame=unicode_text)
    config.attribute = _settings()
    # push sends the top 2 of the queue and every acquired pool sample: all inside TOP
    config.studio.budget, config.studio.control_share = 2, 0.0
    return store, config


@pytest.mark.slow
def test_attributions_cover_the_top_of_both_queues_and_resume(scored_run, caplog):
    store, config = scored_run
    info = run_attribute(store, config, progress=False)
    table = store.read_table("attributions.parquet")
    assert table.schema.equals(SCHEMA)
    rows = table.to_pandas()
    suspects = store.read_table("scores/suspects.parquet").to_pandas().head(TOP)
    acquire = store.read_table("scores/acquire.parquet").to_pandas().head(TOP)
    assert 0 < len(acquire) <= 4
    assert len(rows) == 2 * TOP + len(acquire) == info["rows"] == info["rows_this_run"]
    # queue order: suspects by rank, suggested then given label; then acquired by rank
    head = rows[rows.source == "suspects"]
    assert head["id"].tolist() == np.repeat(suspects["id"].to_numpy(), 2).tolist()
    assert head["rank"].tolist() == np.repeat(suspects["rank"].to_numpy(), 2).tolist()
    assert head["target_role"].tolist() == ["suggested", "given"] * TOP
    assert head["target_label"].tolist() == [label for pair in zip(
        suspects["suggested_label"], suspects["given_label"], strict=True) for label in pair]
    tail = rows[rows.source == "acquire"]
    pred = store.read_table("features/pool").to_pandas().set_index("id")["pred"]
    assert tail["id"].tolist() == acquire["id"].tolist()
    assert (tail["target_role"] == "predicted").all()
    assert tail["target_label"].tolist() == pred.loc[acquire["id"]].tolist()
    # spans index the dataset's texts; IG's delta stays small
    texts = {**store.read_table("dataset/train.parquet").to_pandas().set_index("id")["text"],
             **store.read_table("dataset/pool.parquet").to_pandas().set_index("id")["text"]}
    for row in rows.itertuples():
        text = texts[row.id]
        if all(word.isalpha() for word in text.split()):
            assert [s["text"] for s in row.spans] == text.split()
        for span in row.spans:
            assert text[span["start"]:span["end"]] == span["text"]
    assert (rows["method"] == "ig").all() and (rows["n_steps"] == 4).all()
    assert not rows["truncated"].any()
    assert np.abs(rows["delta"]).max() < 0.05
    assert store.finished_shards("attributions") == set(range(-(-len(rows) // 5)))

    # a run killed midway: part 1 and the table never written, no marker
    store.remove("attributions/part-00001.parquet")
    store.remove("attributions.parquet")
    store.remove("_stages/attribute.json")
    again = run_attribute(store, config, progress=False)
    assert again["rows_this_run"] == 5 and again["rows"] == len(rows)
    after = store.read_table("attributions.parquet").to_pandas()
    assert after["id"].tolist() == rows["id"].tolist()
    for a, b in zip(after["spans"], rows["spans"], strict=True):
        np.testing.assert_allclose([s["score"] for s in a], [s["score"] for s in b], atol=1e-5)
    # done: a third run computes nothing
    assert run_attribute(store, config, progress=False)["rows_this_run"] == 5
    # asked again with other settings: kept, and said so (it said "already done" alone)
    other = config.model_copy(deep=True)
    other.attribute = _settings(n_steps=7)
    with caplog.at_level("WARNING", logger="relabeler.jobs.attribute"):
        assert run_attribute(store, other, progress=False)["n_steps"] == 4
    assert "already done in" in caplog.text and "attribute.n_steps was 4, now 7" in caplog.text


@pytest.mark.slow
def test_every_task_of_the_plan_is_attributed_controls_too(scored_run, caplog):
    from relabeler.queue_plan import empty_manifest, plan_training_queue

    store, config = scored_run
    config = copy.deepcopy(config)
    config.studio.budget, config.studio.control_share, config.studio.seed = TOP + 2, 0.25, 3
    ranked = store.read_table("scores/suspects.parquet").to_pandas().sort_values("rank")
    train_ids = sorted(store.read_table("dataset/train.parquet").to_pandas()["id"])
    flagged, drawn = plan_training_queue(ranked["id"].tolist(), train_ids, empty_manifest(),
                                         budget=TOP + 2, control_share=0.25, seed=3)
    assert len(flagged) == TOP and len(drawn) == 2
    plan = plan_queue(store, config.studio)
    controls = sorted(plan.loc[plan["source"] == "random_control", "id"])
    assert controls == sorted(drawn) and not set(controls) & set(flagged)
    assert sorted(plan.loc[plan["source"] == "flagged", "id"]) == sorted(flagged)
    assert store.read_table("queue/plan.parquet").num_rows == len(plan)

    with caplog.at_level("INFO", logger="relabeler.jobs.attribute"):
        rows = queue_rows(store, TOP, plan)
        # a round's own call (relabeler next) has no --top to explain: it said "--top 1"
        assert len(queue_rows(store, 1, plan, explain=False)["id"]) == len(rows["id"])
    assert [m for m in caplog.messages if "--top" in m] == [
        f"attribute: --top {TOP}, and 2 more planned tasks of queue/plan.parquet (studio.budget, "
        "its random controls) below it: every task pushed needs its evidence"]
    suspects = rows["source"] == "suspects"
    assert set(rows["id"][suspects]) == set(flagged) | set(controls)
    # in rank order, both targets each: the controls come after the top TOP
    rank_of = dict(zip(ranked["id"], ranked["rank"], strict=True))
    assert rows["rank"][suspects].tolist() == sorted(rank_of[i] for i in rows["id"][suspects])
    assert len(rows["id"][suspects]) == 2 * (TOP + 2)


@pytest.mark.slow
def test_parts_from_other_settings_are_discarded(scored_run, monkeypatch):
    import relabeler.jobs.attribute as job

    store, config = scored_run
    store.write_json("attributions/_plan.json", {"method": "grad_x_input"})  # a killed run's
    store.write_shard("attributions", 0, SCHEMA.empty_table())
    store.remove("_stages/attribute.json")
    seen = {}

    def fake_queue(store, rows, **kwargs):
        seen.update(parts=store.finished_shards("attributions"), rows=len(rows["id"]), **kwargs)
        raise KeyboardInterrupt  # stop before any work

    monkeypatch.setattr(job, "attribute_queue", fake_queue)

    def start_with_7_steps() -> None:
        config.attribute = _settings(top=2, n_steps=7)
        try:
            with pytest.raises(KeyboardInterrupt):
                run_attribute(store, config, progress=False)
        finally:
            config.attribute = _settings()

    start_with_7_steps()
    assert seen["parts"] == set() and seen["n_steps"] == 7 and seen["method"] == "ig"
    n_acquire = store.read_table("scores/acquire.parquet").num_rows
    assert seen["rows"] == 2 * 2 + n_acquire  # top 2 x 2 targets + every pool pick push sends
    assert store.read_json("attributions/_plan.json")["n_steps"] == 7
    # parts with no record of what they were made from, and parts of a retrained model
    for damage in ("no record", "retrained"):
        store.write_shard("attributions", 0, SCHEMA.empty_table())
        if damage == "no record":
            store.remove("attributions/_plan.json")
        else:
            labels = store.read_json("model/labels.json")
            time.sleep(0.01)
            store.write_json("model/labels.json", labels)  # the model's files rewritten
        start_with_7_steps()
        assert seen["parts"] == set(), damage
    store.reset_stage("attribute", ["attributions", "attributions.parquet"])


@pytest.mark.slow
def test_a_redo_keeps_the_finished_attributions_until_the_new_ones_are_whole(scored_run,
                                                                              monkeypatch):
    import relabeler.jobs.attribute as job
    from relabeler.plugin.push import PushError, push
    from tests.plugin.fake_studio import FakeStudio

    store, config = scored_run
    run_attribute(store, config, progress=False)
    finished = store.read_bytes("attributions.parquet")

    def interrupted(store, rows, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C (or a kill) before the new parts are written

    monkeypatch.setattr(job, "attribute_queue", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_attribute(store, config, force=True, progress=False)
    assert store.read_bytes("attributions.parquet") == finished
    assert not store.exists("_stages/attribute.json") and not store.finished_shards(
        "attributions")
    # push sends nothing (and makes no project) until the attribute run is finished
    studio = FakeStudio(store.read_json("model/labels.json"))
    with pytest.raises(PushError, match="attribute stage started") as err:
        push(store, studio, project_title="t", budget=2, control_share=0.0)
    assert f"`relabeler attribute --run {store.uri}`" in str(err.value)
    assert studio.projects == {}
    monkeypatch.undo()
    again = run_attribute(store, config, progress=False)
    assert again["rows"] == again["rows_this_run"] == store.read_table(
        "attributions.parquet").num_rows
    assert push(store, studio, project_title="t", budget=2, control_share=0.0).has_evidence


@pytest.mark.slow
def test_a_finished_stage_asked_for_another_plan_says_so(scored_run, caplog):
    store, config = scored_run
    run_attribute(store, config, progress=False)
    other = config.model_copy(deep=True)
    other.studio.budget, other.studio.control_share, other.studio.seed = 5, 0.2, 9
    with caplog.at_level("WARNING", logger="relabeler.jobs.attribute"):
        info = run_attribute(store, other, progress=False)
    assert info["plan"] == {"budget": 2, "control_share": 0.0, "seed": 0}
    assert "with other settings, kept as it is" in caplog.text
    assert ("studio.budget was 2, now 5; studio.control_share was 0.0, now 0.2; studio.seed "
            "was 0, now 9") in caplog.text


def test_worker_returns_the_table_columns(tiny_bert_dir, tmp_path):
    from relabeler.model import load_classifier, load_tokenizer

    load_classifier(tiny_bert_dir, ["neg", "pos"]).save_pretrained(tmp_path)
    load_tokenizer(tiny_bert_dir).save_pretrained(tmp_path)
    (tmp_path / "labels.json").write_text('["neg", "pos"]')
    worker = AttributionWorker(str(tmp_path), max_length=16, n_steps=3, num_threads=1)
    out = worker({"id": np.array(["a", "b"], dtype=object),
                  "text": np.array(["a great film", ""], dtype=object),
                  "target_index": np.array([1, 0]), "rank": np.array([1, 2])})
    assert out.column("target_label").to_pylist() == ["pos", "neg"]
    spans = out.column("spans").to_pylist()
    assert [s["text"] for s in spans[0]] == ["a", "great", "film"] and spans[1] == []
    assert out.column("n_tokens").to_pylist() == [5, 2]
    assert "text" not in out.column_names and out.column("id").to_pylist() == ["a", "b"]


def test_attribute_before_score_is_a_clear_error(tmp_path):
    config = RunConfig(run_dir=str(tmp_path / "run"))
    with pytest.raises(StageError, match="attribute needs the scored queue"):
        run_attribute(RunStore(config.run_dir), config)

