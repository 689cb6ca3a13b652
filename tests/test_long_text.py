"""long_text: window boundaries, pooling, the evidence choice, spans in the original text, the
encoder cache key, and every stage reading the same windows (tiny random BERT)."""

import numpy as np
import pytest
import torch

from relabeler.config import ConfigError, RunConfig, apply_overrides
from relabeler.encoder_cache import encoder_fingerprint
from relabeler.jobs.attribute import AttributionWorker
from relabeler.jobs.extract import FeatureExtractor
from relabeler.long_text import (
    LongText,
    TextWindows,
    attribution_choice,
    evidence_choice,
    long_text_of,
    pool_windows,
    record_long_text,
    text_windows,
)
from relabeler.model import encode, load_classifier, load_tokenizer
from relabeler.plugin.tasks import AttributionIndex, SampleInput
from relabeler.training import predict_probs

LONG = " ".join(f"word{i}" for i in range(60))  # 2 tokens a word: 120 content tokens
WINDOWS = LongText("windows", stride=4)


@pytest.fixture(scope="module")
def tokenizer(tiny_bert_dir):
    return load_tokenizer(tiny_bert_dir)


def _windowed_model_dir(tiny_bert_dir, tmp_path, settings: LongText):
    model = load_classifier(tiny_bert_dir, ["neg", "pos"])
    record_long_text(model, settings)
    model.save_pretrained(tmp_path)
    load_tokenizer(tiny_bert_dir).save_pretrained(tmp_path)
    (tmp_path / "labels.json").write_text('["neg", "pos"]')
    return str(tmp_path)


def test_a_short_text_is_one_window_the_whole_text(tokenizer):
    windows = text_windows(tokenizer, ["a short text ", LONG], max_length=16, settings=WINDOWS)
    assert windows.sample[0] == 0 and windows.sample[1] == 1
    assert (windows.start[0], windows.end[0]) == (0, len("a short text "))
    assert windows.counts()[0] == 1


def test_windows_cover_the_text_in_max_length_pieces_sharing_stride_tokens(tokenizer):
    windows = text_windows(tokenizer, [LONG], max_length=16, settings=WINDOWS)
    pieces = windows.texts([LONG])
    # 120 content tokens, 14 per window, 10 new per window after the first: 12 windows
    assert len(pieces) == 12
    assert windows.start[0] == 0 and windows.end[-1] == len(LONG)
    assert pieces[0] == "word0 word1 word2 word3 word4 word5 word6"
    assert pieces[1] == " word5 word6 word7 word8 word9 word10 word11"  # shares word5 word6
    for piece, start, end in zip(pieces, windows.start, windows.end, strict=True):
        assert LONG[start:end] == piece
        assert len(tokenizer(piece)["input_ids"]) <= 16


def test_truncate_reads_each_text_whole_and_max_windows_keeps_the_first(tokenizer):
    truncated = text_windows(tokenizer, [LONG, "x"], max_length=16, settings=LongText())
    assert truncated.sample.tolist() == [0, 1] and truncated.end.tolist() == [len(LONG), 1]
    capped = text_windows(tokenizer, [LONG, "x"], max_length=16,
                          settings=LongText("evidence", stride=4, max_windows=3))
    assert capped.start.tolist() == [0, 29, 59, 0]  # each from the space before its word
    assert capped.cut.tolist() == [True, False]  # LONG's windows past the third go unread
    assert text_windows(tokenizer, [LONG], max_length=16, settings=WINDOWS).cut is None


def test_a_stride_without_room_is_an_error(tokenizer):
    with pytest.raises(ValueError, match="stride must be < max_length - 2"):
        text_windows(tokenizer, [LONG], max_length=16, settings=LongText("windows", stride=14))
    with pytest.raises(ConfigError, match="window_stride"):
        apply_overrides(RunConfig(), {"model.long_text": "windows", "model.max_length": 64,
                                      "model.window_stride": 64})
    with pytest.raises(ConfigError, match="model.long_text"):
        apply_overrides(RunConfig(), {"model.long_text": "chunks"})
    # truncation never reads the stride
    apply_overrides(RunConfig(), {"model.long_text": "truncate", "model.max_length": 16,
                                  "model.window_stride": 32})
    # the stride left at 0: a quarter of max_length
    assert apply_overrides(RunConfig(), {"model.max_length": 16}).model.effective_stride() == 4
    assert RunConfig().model.effective_stride() == 32


def _two_texts() -> TextWindows:
    return TextWindows(np.array([0, 0, 0, 1]), np.array([0, 5, 9, 0]), np.array([6, 10, 14, 3]))


def test_windows_pool_by_the_mean_and_evidence_by_the_most_confident_window():
    windows = _two_texts()
    features = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0], [7.0, 7.0]])
    logits = np.array([[0.0, 0.1], [4.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    pooled = pool_windows(features, logits, windows, "windows")
    np.testing.assert_allclose(pooled.features, [[3.0, 2.0], [7.0, 7.0]])
    np.testing.assert_allclose(pooled.logits, [[4 / 3, 0.7], [1.0, 0.0]])
    evidence = pool_windows(features, logits, windows, "evidence")
    assert evidence.chosen.tolist() == [1, 3]   # p = .98 in window 1 beats .88 in window 2
    np.testing.assert_allclose(evidence.logits, [[4.0, 0.0], [1.0, 0.0]])
    assert pool_windows(features, logits, windows, "truncate").chosen.tolist() == [0, 3]


def test_evidence_ties_go_to_the_earliest_window_and_attribution_follows_the_target():
    windows = _two_texts()
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 0.0]])
    assert evidence_choice(np.array([[1.0, 0], [1, 0], [0, 1], [0, 0]]), windows).tolist() == \
        [0, 3]
    # windows: the window most for the target; evidence: the model's window whatever the target
    assert attribution_choice(logits, windows, np.array([1, 0]), "windows").tolist() == [1, 3]
    assert attribution_choice(logits, windows, np.array([0, 0]), "windows").tolist() == [2, 3]
    assert attribution_choice(logits, windows, np.array([1, 0]), "evidence").tolist() == [2, 3]


def test_the_cache_key_names_the_windowing_and_keeps_truncations(tiny_bert_dir, tokenizer):
    model = load_classifier(tiny_bert_dir, ["neg", "pos"])
    plain = encoder_fingerprint(model, tokenizer, 16)
    assert encoder_fingerprint(model, tokenizer, 16, LongText().cache_tag()) == plain
    tagged = encoder_fingerprint(model, tokenizer, 16, WINDOWS.cache_tag())
    assert tagged != plain
    assert LongText("evidence", stride=4).cache_tag() == WINDOWS.cache_tag()
    assert encoder_fingerprint(model, tokenizer, 16,
                               LongText("windows", stride=8).cache_tag()) != tagged


def test_extract_and_predict_pool_the_windows_of_a_trained_model(tiny_bert_dir, tmp_path,
                                                                  tokenizer):
    model_dir = _windowed_model_dir(tiny_bert_dir, tmp_path, WINDOWS)
    model = load_classifier(model_dir)
    assert long_text_of(model) == WINDOWS
    texts = [LONG, "a great film"]
    windows = text_windows(tokenizer, texts, max_length=16, settings=WINDOWS)
    with torch.inference_mode():
        window_logits = model(**encode(tokenizer, windows.texts(texts), 16)).logits.numpy()
    expected = [window_logits[:-1].mean(0), window_logits[-1]]
    out = FeatureExtractor(model_dir, max_length=16, num_threads=1, batch_windows=5)(
        {"text": np.array(texts, dtype=object), "label_index": np.array([1, -1])})
    np.testing.assert_allclose(out["logits"], expected, atol=1e-4)
    assert out["n_tokens"].tolist()[1] == 5 and out["n_tokens"][0] == 11 * 16 + 12
    probs = predict_probs(model, tokenizer, texts, max_length=16, batch_size=4,
                          device=torch.device("cpu"), long_text=WINDOWS)
    np.testing.assert_allclose(probs, torch.tensor(np.array(expected)).softmax(-1).numpy(),
                               atol=1e-4)


def test_attribution_reads_one_window_with_spans_in_the_original_text(tiny_bert_dir, tmp_path):
    model_dir = _windowed_model_dir(tiny_bert_dir, tmp_path, LongText("evidence", stride=4))
    worker = AttributionWorker(model_dir, max_length=16, n_steps=3, num_threads=1)
    text = "intro " + LONG
    out = worker({"id": np.array(["a", "b"], dtype=object),
                  "text": np.array([text, "a great film"], dtype=object),
                  "target_index": np.array([1, 0])})
    start, end = out.column("window_start").to_pylist(), out.column("window_end").to_pylist()
    assert (start[1], end[1]) == (0, len("a great film"))
    assert 0 <= start[0] < end[0] <= len(text) and end[0] - start[0] < len(text)
    spans = out.column("spans").to_pylist()[0]
    assert spans and all(text[s["start"]:s["end"]] == s["text"] for s in spans)
    assert all(start[0] <= s["start"] < s["end"] <= end[0] for s in spans)
    assert [s["text"] for s in spans] == text[start[0]:end[0]].split()


def test_the_evidence_window_comes_first_with_its_highlights_and_the_whole_text_below(
        tiny_bert_dir):
    import pandas as pd

    from relabeler.attribution import Span
    from relabeler.plugin.labeling import LabelingSpec, build_labeling_config
    from relabeler.plugin.tasks import build_task

    frame = pd.DataFrame({"id": ["a", "a", "b"], "target_label": ["pos", "neg", "pos"],
                          "spans": [[], [], []], "window_start": [6, 21, 0],
                          "window_end": [20, 32, 5]})
    index = AttributionIndex.from_frame(frame)
    text = "intro <the> window, and the rest"
    assert index.window("a", text, "pos") == (6, 20) and index.window("b", "short", "pos") is None
    # under long_text = windows each target's evidence comes from its own window: both shown
    assert index.window("a", text, "neg") == (21, 32)
    sample = SampleInput(id="a", text=text, given_label="neg", suggested_label="pos",
                         evidence_window=index.window("a", text, "pos"),
                         given_window=index.window("a", text, "neg"),
                         suggestion_spans=(Span(12, 18, "window", 0.9),),
                         given_spans=(Span(28, 32, "rest", 0.5),))
    xml = build_labeling_config(["neg", "pos"])
    spec = LabelingSpec.from_config(xml)
    # the window's page comes before the labeled text in the view
    assert xml.index('value="$window"') < xml.index('<Text name="text"') \
        < xml.index('value="$panel"')
    assert (spec.window_field, spec.panel_field, spec.text_field) == ("window", "panel", "text")
    task = build_task(sample, spec, priority=1)
    window = task["data"]["window"]
    assert task["data"]["text"] == text   # the regions stay at offsets of the whole text
    assert "characters 6-20 of 32" in window and "characters 21-32 of 32" in window
    assert window.index("for the suggestion") < window.index("for the given label")
    # the window's characters, escaped, its regions marked in their colours
    assert ("&lt;the&gt; <span style='background:#56B4E9' title=\"Supports suggestion\">"
            "window</span>,") in window
    assert "the <span style='background:#E69F00' title=\"Supports given label\">rest</span>" \
        in window
    assert "Evidence window" not in task["data"]["panel"]
    # a text read whole has no window page: the labeled text is all there is
    short = build_task(SampleInput(id="b", text="short", given_label="neg",
                                   suggested_label="pos"), spec, priority=2)
    assert short["data"]["window"] == ""
    # a project made before the window page existed: its panel, below the text, carries it
    old = LabelingSpec.from_config(xml.replace('  <HyperText name="window" value="$window" '
                                               'inline="true"/>\n', ""))
    assert old.window_field is None and old.panel_field == "panel"
    data = build_task(sample, old, priority=1)["data"]
    assert "window" not in data and data["panel"].startswith(window.replace("below", "above"))


def test_full_training_reads_every_window_and_keeps_one_dynamics_row_per_text(tiny_bert_dir):
    from relabeler.training import FitOptions, fit_full

    model = load_classifier(tiny_bert_dir, ["neg", "pos"])
    opts = FitOptions.resolve(mode="full", epochs=2, batch_size=4, learning_rate=1e-4,
                              weight_decay=0.0, warmup_ratio=0.0, max_length=16, seed=0,
                              device=torch.device("cpu"), progress=False, long_text=WINDOWS)
    texts = [LONG, "a great film", "word1 " * 30, "awful"]
    dynamics = fit_full(model, load_tokenizer(tiny_bert_dir), texts, np.array([0, 1, 0, 1]),
                        np.array(["a", "b", "c", "d"], dtype=object), opts,
                        torch.device("cpu"))
    assert dynamics[["epoch", "id"]].values.tolist() == [
        [e, i] for e in (0, 1) for i in ("a", "b", "c", "d")]
    assert dynamics["gold_prob"].between(0, 1).all()
    # the mean over windows keeps train/dynamics.parquet's types (it had upcast to float64)
    assert dynamics.drop(columns="id").dtypes.astype(str).to_dict() == {
        "epoch": "int32", "gold_prob": "float32", "margin": "float32", "logit_margin": "float32"}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["windows", "evidence"])
def test_head_training_and_extract_read_the_same_windows(ray_session, tiny_bert_dir, tmp_path,
                                                         mode):
    """End to end on a tiny model: training's eval predictions (head on cached window states)
    equal what extract computes from the saved model on the raw texts, and what predict_probs
    gives, for texts of one and of many windows."""
    from relabeler.jobs.extract import run_extract
    from relabeler.jobs.train import run_train
    from relabeler.store import RunStore
    from tests.conftest import head_config, synthetic_frame

    frame = synthetic_frame(60)
    frame.loc[::3, "text"] = frame.loc[::3, "text"] + " " + LONG   # every third text is long
    path = tmp_path / "long.csv"
    frame.to_csv(path, index=False)
    config = head_config(tmp_path / "run", path, tiny_bert_dir, max_length=16, epochs=3)
    apply_overrides(config, {"model.pooling": "mean", "model.long_text": mode,
                             "model.window_stride": 4, "data.eval_fraction": 0.3,
                             "extract.splits": ["eval"], "train.folds": 2})
    store = RunStore(config.run_dir)
    run_train(store, config, progress=False)
    run_extract(store, config, progress=False)
    model = load_classifier(store.path("model"))
    assert long_text_of(model) == LongText(mode, stride=4)
    saved = store.read_table("train/eval_predictions.parquet").to_pandas().set_index("id")
    features = store.read_table("features/eval").to_pandas().set_index("id")
    texts = store.read_table("dataset/eval.parquet").to_pandas().set_index("id")
    assert texts["text"].str.len().max() > 300   # some eval texts take many windows
    np.testing.assert_allclose(np.stack(features.loc[saved.index, "probs"].to_numpy()),
                               np.stack(saved["probs"].to_numpy()), atol=1e-4)
    probs = predict_probs(model, load_tokenizer(store.path("model")),
                          texts.loc[saved.index, "text"].tolist(), max_length=16,
                          batch_size=8, device=torch.device("cpu"),
                          long_text=long_text_of(model))
    np.testing.assert_allclose(probs, np.stack(saved["probs"].to_numpy()), atol=1e-4)
    assert store.exists("train/oof.parquet")


def test_head_mode_windows_need_a_head_linear_in_the_cached_states(tiny_bert_dir, caplog):
    from relabeler.jobs.head_states import long_text_settings

    cls_pooled = load_classifier(tiny_bert_dir, ["neg", "pos"], pooling="cls")
    mean_pooled = load_classifier(tiny_bert_dir, ["neg", "pos"], pooling="mean")
    default = apply_overrides(RunConfig(), {"model.max_length": 64})
    assert default.model.long_text == "auto"
    assert long_text_settings(default, mean_pooled) == LongText("windows", stride=16)
    assert long_text_settings(default) == LongText("windows", stride=16)   # full mode
    # auto: truncation, logged; windows asked for: an error naming the key
    assert long_text_settings(default, cls_pooled) == LongText(stride=16)
    assert "reads truncated texts" in caplog.text
    asked = apply_overrides(RunConfig(), {"model.long_text": "windows"})
    with pytest.raises(ConfigError, match="model.long_text = windows in head mode"):
        long_text_settings(asked, cls_pooled)
    assert long_text_settings(asked) == LongText("windows", stride=32)   # full mode: any head


def test_attribution_flags_a_text_whose_windows_past_max_windows_go_unread(tiny_bert_dir,
                                                                           tmp_path):
    model_dir = _windowed_model_dir(tiny_bert_dir, tmp_path,
                                    LongText("windows", stride=4, max_windows=2))
    worker = AttributionWorker(model_dir, max_length=16, n_steps=3, num_threads=1)
    out = worker({"id": np.array(["a", "b"], dtype=object),
                  "text": np.array([LONG, "a great film"], dtype=object),
                  "target_index": np.array([1, 0])})
    assert out.column("truncated").to_pylist() == [True, False]


def test_extract_counts_as_cut_only_the_texts_with_windows_past_max_windows(tiny_bert_dir,
                                                                            tmp_path):
    import pandas as pd
    import pyarrow as pa

    from relabeler.jobs.extract import _windows_left
    from relabeler.store import RunStore

    store = RunStore(str(tmp_path / "run"))
    _windowed_model_dir(tiny_bert_dir, tmp_path / "run" / "model", WINDOWS)
    store.write_table("dataset/train.parquet", pa.Table.from_pandas(pd.DataFrame(
        {"id": ["a", "b", "c"], "text": [LONG, "a great film", "word " * 20],
         "label": ["neg", "pos", "neg"]}),
        preserve_index=False))
    # a text of 2 windows was counted as cut at max_length (its n_tokens sums both windows)
    assert _windows_left(store, "train", LongText("windows", stride=4, max_windows=2), 16) == 1
    assert _windows_left(store, "train", LongText("windows", stride=4), 16) == 0


def test_windows_start_and_end_at_word_edges_so_each_reads_back_within_max_length(tokenizer):
    # words of 2 and 3 pieces ("word", "##1", "##0"): a cut every 14 tokens falls inside words
    text = " ".join(f"word{i}" for i in range(5, 45)) + " cafe\u0301"
    windows = text_windows(tokenizer, [text], max_length=16, settings=WINDOWS)
    pieces = windows.texts([text])
    content = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    for piece, end in zip(pieces, windows.end, strict=True):
        assert piece.lstrip().startswith(("word", "cafe")), piece  # never a word's tail
        assert text[end:end + 1] in ("", " "), piece              # nor a word's head
        assert len(tokenizer(piece)["input_ids"]) <= 16
    # every token is read whole by some window, the accent with its word
    for a, b in content["offset_mapping"]:
        assert any(s <= a and b <= e for s, e in zip(windows.start, windows.end, strict=True))
    assert pieces[-1].endswith("cafe\u0301")
    # consecutive windows share at least the stride
    for e0, s1 in zip(windows.end[:-1], windows.start[1:], strict=True):
        shared = [1 for a, b in content["offset_mapping"] if s1 <= a and b <= e0]
        assert len(shared) >= WINDOWS.stride


def test_byte_level_bpe_windows_keep_the_space_their_first_token_carries():
    # RoBERTa's kind of tokenizer reads " word" as one piece ("Ġword") and "word" as others: a
    # window that began at the word's first letter read back longer than max_length
    import random

    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import PreTrainedTokenizerFast

    rng = random.Random(0)
    words = ["internationalization", "characteristically", "uncharacteristically", "the", "and",
             "counterproductive", "misunderstanding", "overwhelmingly", "a", "of"]
    corpus = ["the " + " ".join(rng.choice(words[3:]) if rng.random() < 0.8
                                else rng.choice(words) for _ in range(30)) for _ in range(300)]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus, vocab_size=600, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False)
    # RoBERTa's offsets leave the space out of "Ġword"'s characters
    bpe._tokenizer.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True,
                                                      add_prefix_space=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>",
                                        eos_token="</s>", unk_token="<unk>", pad_token="<pad>")
    pieces = []
    for _ in range(40):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(20, 60)))
        pieces += text_windows(tokenizer, [text], max_length=16, settings=WINDOWS).texts([text])
    assert len(pieces) > 100
    assert max(len(tokenizer(piece)["input_ids"]) for piece in pieces) <= 16
