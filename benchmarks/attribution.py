"""Attributions/s of relabeler's batched IG against captum used plainly, and whether the
highlights mean something (faithfulness against random words), on sms-spam.

Model: the packaged MiniLM-L6 with a classification head trained in head mode on ``--train``
texts, half spam (seconds). Attributed: ``--n`` other texts, half spam, each for both classes
(as the job attributes a suspect's suggested and given label).

Speed: captum's ``LayerIntegratedGradients`` used plainly, as its BERT tutorial does (one text
and one target per call, no padding, the same ``n_steps``, the same baseline and the same
attributed output, log p(target)), against :class:`relabeler.attribution.TokenAttributor` on
the same pairs. The two are stepped chunk by chunk, alternating, so load from other processes
on a shared machine falls on both alike. Their token scores must agree within 1e-4.

Faithfulness (DeYoung et al. 2020), for the predicted class: delete the top-k% words by
attribution (removing their characters from the text, then re-tokenizing) and measure
comprehensiveness = p(x) - p(x without them) (higher = the words mattered) and sufficiency =
p(x) - p(only them) (lower = they suffice), for IG, grad x input, IG with one step (the
path's midpoint: as cheap as grad x input) and random words (mean of ``--random-draws``
draws). With CUDA, also: IG samples/s for a BERT-base-sized random model at
128 tokens and 50 steps.

    .venv/bin/python benchmarks/attribution.py [--n 40] [--steps 20] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
import warnings

import numpy as np
import pandas as pd
import torch

from relabeler.attribution import Attribution, TokenAttributor, keep_spans, remove_spans
from relabeler.data import DEMO_DATASETS
from relabeler.model import encode, load_classifier, load_tokenizer
from relabeler.training import FitOptions, encoder_cls, fit_head

log = logging.getLogger("attribution_bench")

CLASSES = ["ham", "spam"]
SCORES_ATOL = 1e-4
TARGET_RATIO = 3.0
TOP_K = (0.1, 0.2, 0.5)
GPU_LENGTH, GPU_STEPS, GPU_TARGET = 128, 50, 150.0


def sample_texts(n_train: int, n: int, seed: int
                 ) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """(train texts, their class ids, attributed texts, their class ids); both sets are half
    spam (spam is 13% of sms-spam; a head trained on a few hundred texts needs enough of it)
    and disjoint."""
    frame = DEMO_DATASETS["sms-spam"]().sample(frac=1.0, random_state=seed)
    spam, ham = frame[frame.label == "spam"], frame[frame.label == "ham"]
    half = n_train // 2
    train = pd.concat([spam.iloc[:half], ham.iloc[:n_train - half]])
    chosen = pd.concat([spam.iloc[half:half + n // 2],
                        ham.iloc[n_train - half:n_train - half + n - n // 2]])
    chosen = chosen.sample(frac=1.0, random_state=seed)
    labels = np.array([CLASSES.index(x) for x in train.label], dtype=np.int64)
    chosen_labels = np.array([CLASSES.index(x) for x in chosen.label], dtype=np.int64)
    return train.text.tolist(), labels, chosen.text.tolist(), chosen_labels


def trained_minilm(texts: list[str], labels: np.ndarray, *, max_length: int):
    cpu = torch.device("cpu")
    tokenizer, model = load_tokenizer(None), load_classifier(None, CLASSES)
    cls = encoder_cls(model, tokenizer, texts, max_length=max_length, batch_size=64,
                      device=cpu)
    opts = FitOptions.resolve(mode="head", epochs=40, batch_size=32, learning_rate=0.0,
                              weight_decay=0.01, warmup_ratio=0.1, max_length=max_length,
                              seed=0, device=cpu, progress=False)
    fit_head(model, cls, labels, np.array([str(i) for i in range(len(texts))]), opts, cpu)
    return model.eval(), tokenizer


@torch.inference_mode()
def probabilities(model, tokenizer, texts: list[str], *, max_length: int,
                  batch_size: int = 64) -> np.ndarray:
    """(N, C) class probabilities."""
    out = []
    for start in range(0, len(texts), batch_size):
        enc = encode(tokenizer, texts[start:start + batch_size], max_length)
        out.append(model(**enc).logits.float().softmax(-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_labels))


class PlainCaptum:
    """captum's LayerIntegratedGradients as its BERT tutorial uses it: one text, one target."""

    def __init__(self, model, tokenizer, *, max_length: int):
        from captum.attr import LayerIntegratedGradients

        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.lig = LayerIntegratedGradients(self.log_probs, model.get_input_embeddings())

    def log_probs(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits.log_softmax(-1)

    def attribute(self, text: str, target: int, n_steps: int) -> tuple[np.ndarray, float]:
        enc = self.tokenizer(text, truncation=True, max_length=self.max_length,
                             return_tensors="pt", return_special_tokens_mask=True)
        ref = torch.where(enc["special_tokens_mask"].bool(), enc["input_ids"],
                          self.tokenizer.pad_token_id)
        attributions, delta = self.lig.attribute(
            enc["input_ids"], baselines=ref, target=target,
            additional_forward_args=(enc["attention_mask"],), n_steps=n_steps,
            return_convergence_delta=True)
        return attributions.sum(-1)[0].detach().numpy(), float(delta[0])


def speed(model, tokenizer, texts: list[str], args) -> dict:
    pairs = [(t, c) for t in texts for c in range(len(CLASSES))]
    plain = PlainCaptum(model, tokenizer, max_length=args.max_length)
    batched = TokenAttributor(model, tokenizer, max_length=args.max_length)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        plain.attribute(texts[0], 0, 2)  # warm-up both
    batched.attribute(texts[:2], [0, 1], n_steps=2)
    seconds = {"plain": 0.0, "batched": 0.0}
    plain_scores, ours = [], []
    chunks = [pairs[i:i + args.chunk] for i in range(0, len(pairs), args.chunk)]
    for number, chunk in enumerate(chunks):
        order = ("plain", "batched") if number % 2 == 0 else ("batched", "plain")
        for name in order:
            started = time.perf_counter()
            if name == "plain":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    plain_scores += [plain.attribute(t, c, args.steps)[0] for t, c in chunk]
            else:
                ours += batched.attribute([t for t, _ in chunk], [c for _, c in chunk],
                                          n_steps=args.steps)
            seconds[name] += time.perf_counter() - started
        log.info("chunk %d/%d: plain %.1f s, batched %.1f s", number + 1, len(chunks),
                 seconds["plain"], seconds["batched"])
    diff = max(float(np.abs(a - b.scores).max()) for a, b in zip(plain_scores, ours,
                                                                  strict=True))
    if not diff <= SCORES_ATOL:
        raise SystemExit(f"plain captum and relabeler differ by {diff:.2e} (> {SCORES_ATOL})")
    started = time.perf_counter()
    fast = batched.attribute([t for t, _ in pairs], [c for _, c in pairs],
                             method="grad_x_input")
    fast_s = time.perf_counter() - started
    started = time.perf_counter()
    one_step = batched.attribute([t for t, _ in pairs], [c for _, c in pairs], n_steps=1)
    one_step_s = time.perf_counter() - started
    n = len(pairs)
    return {"attributions": n, "n_steps": args.steps, "threads": torch.get_num_threads(),
            "plain_per_s": n / seconds["plain"], "batched_per_s": n / seconds["batched"],
            "ratio": seconds["plain"] / seconds["batched"], "grad_x_input_per_s": n / fast_s,
            "ig_1_step_per_s": n / one_step_s, "scores_max_abs_diff": diff,
            "ig_abs_delta_mean": float(np.mean([abs(r.delta) for r in ours])),
            "_ig": ours, "_fast": fast, "_one_step": one_step}


def rank_agreement(ig: list[Attribution], fast: list[Attribution]) -> dict:
    from scipy.stats import spearmanr

    rhos = [spearmanr([s.score for s in a.spans], [s.score for s in b.spans]).statistic
            for a, b in zip(ig, fast, strict=True) if len(a.spans) >= 3]
    rhos = [r for r in rhos if np.isfinite(r)]
    return {"spearman_mean": float(np.mean(rhos)), "spearman_median": float(np.median(rhos)),
            "pairs": len(rhos)}


def faithfulness(model, tokenizer, texts: list[str], explanations: dict[str, list],
                 args) -> dict:
    """explanations: method -> per text, the Attribution for the predicted class."""
    rng = np.random.default_rng(args.seed)
    targets = np.array([e.target for e in next(iter(explanations.values()))])
    full = probabilities(model, tokenizer, texts, max_length=args.max_length)
    p_full = full[np.arange(len(texts)), targets]
    table: dict[str, dict[float, dict[str, float]]] = {}
    for method in list(explanations) + ["random"]:
        table[method] = {}
        for k in TOP_K:
            draws = args.random_draws if method == "random" else 1
            removed, kept, owners = [], [], []
            for i, text in enumerate(texts):
                spans = (explanations.get(method) or explanations["ig"])[i].spans
                if not spans:
                    continue
                count = max(1, math.ceil(k * len(spans)))
                for _ in range(draws):
                    if method == "random":
                        chosen = [spans[j] for j in rng.choice(len(spans), count, replace=False)]
                    else:
                        chosen = sorted(spans, key=lambda s: -s.score)[:count]
                    removed.append(remove_spans(text, chosen))
                    kept.append(keep_spans(text, chosen))
                    owners.append(i)
            owners = np.array(owners)
            p_removed = probabilities(model, tokenizer, removed, max_length=args.max_length)
            p_kept = probabilities(model, tokenizer, kept, max_length=args.max_length)
            rows = np.arange(len(owners))
            comp = p_full[owners] - p_removed[rows, targets[owners]]
            suff = p_full[owners] - p_kept[rows, targets[owners]]
            table[method][k] = {"comprehensiveness": float(comp.mean()),
                                "sufficiency": float(suff.mean())}
    return table


def gpu_speed(device: torch.device, *, n: int = 1024, n_steps: int = GPU_STEPS,
              tokenizer: str | None = None, config=None) -> dict:
    """IG samples/s for a BERT-base-sized random classifier, ``GPU_LENGTH`` tokens, ``n_steps``
    steps. ``tokenizer``: a folder with a 30522-word BERT vocabulary (default: the packaged
    MiniLM's); ``config``: a smaller ``BertConfig`` for a dry run on a CPU."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(config or BertConfig(num_labels=2)).to(device).eval()
    tokenizer = load_tokenizer(tokenizer)  # the same 30522-word vocabulary
    words = np.array("the model reads each text and labels it with a class".split())
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, GPU_LENGTH)) for _ in range(n)]
    targets = rng.integers(0, 2, len(texts)).tolist()
    attributor = TokenAttributor(model, tokenizer, max_length=GPU_LENGTH)
    check = attributor.attribute(texts[:4], targets[:4], n_steps=2)
    if any(len(r.tokens) != GPU_LENGTH for r in check):
        raise SystemExit(f"synthetic texts are not {GPU_LENGTH} tokens")
    attributor.attribute(texts[:64], targets[:64], n_steps=n_steps)  # warm-up
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    results = attributor.attribute(texts, targets, n_steps=n_steps)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"device": torch.cuda.get_device_name(device) if cuda else "CPU",
            "samples": len(texts), "samples_per_s": len(texts) / seconds, "n_steps": n_steps,
            "length": GPU_LENGTH,
            "ig_abs_delta_mean": float(np.mean([abs(r.delta) for r in results]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=40, help="texts attributed (2 targets each)")
    parser.add_argument("--train", type=int, default=400, help="texts the head is trained on")
    parser.add_argument("--steps", type=int, default=20, help="IG n_steps (both sides)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--chunk", type=int, default=32, help="pairs per alternating chunk")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default")
    parser.add_argument("--random-draws", type=int, default=5)
    parser.add_argument("--gpu-n", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.threads:
        torch.set_num_threads(args.threads)

    train_texts, train_labels, texts, labels = sample_texts(args.train, args.n, args.seed)
    started = time.perf_counter()
    model, tokenizer = trained_minilm(train_texts, train_labels, max_length=args.max_length)
    probs = probabilities(model, tokenizer, texts, max_length=args.max_length)
    log.info("head trained on %d texts in %.0f s", len(train_texts),
             time.perf_counter() - started)

    result = speed(model, tokenizer, texts, args)
    pred = probs.argmax(1)
    explained = {name: [pairs[2 * i + int(c)] for i, c in enumerate(pred)]
                 for name, pairs in (("ig", result.pop("_ig")),
                                     ("grad_x_input", result.pop("_fast")),
                                     ("ig_1_step", result.pop("_one_step")))}
    ig = explained["ig"]
    agreement = rank_agreement(ig, explained["grad_x_input"])
    agreement_one_step = rank_agreement(ig, explained["ig_1_step"])
    faith = faithfulness(model, tokenizer, texts, explained, args)

    print(f"\nsms-spam, MiniLM-L6 + head: {len(texts)} texts x {len(CLASSES)} targets, "
          f"n_steps={args.steps}, {result['threads']} CPU threads")
    print(f"  head accuracy on these texts: {np.mean(pred == labels):.2f} "
          f"(spam recall {np.mean(pred[labels == 1] == 1):.2f})")
    print(f"  captum, plainly (1 text x 1 target per call): {result['plain_per_s']:7.2f} "
          "attributions/s")
    print(f"  relabeler batched IG:                         {result['batched_per_s']:7.2f} "
          f"attributions/s   ratio {result['ratio']:.2f}x (target >= {TARGET_RATIO:.0f}x)")
    print(f"  relabeler grad x input:                       "
          f"{result['grad_x_input_per_s']:7.2f} attributions/s")
    print(f"  relabeler IG, n_steps=1 (midpoint):           "
          f"{result['ig_1_step_per_s']:7.2f} attributions/s")
    print(f"  scores agree with plain captum within {result['scores_max_abs_diff']:.1e}; "
          f"IG mean |delta| {result['ig_abs_delta_mean']:.1e}")
    print(f"  grad x input vs IG, Spearman over words (predicted class, {agreement['pairs']} "
          f"texts): mean {agreement['spearman_mean']:.3f}, median "
          f"{agreement['spearman_median']:.3f}")
    print(f"  IG n_steps=1 vs IG n_steps={args.steps}, Spearman over words: mean "
          f"{agreement_one_step['spearman_mean']:.3f}, median "
          f"{agreement_one_step['spearman_median']:.3f}")
    print("\n  faithfulness, predicted class, delete = remove the words' characters")
    print("  comprehensiveness = p(x) - p(x without top-k% words): higher is better")
    print("  sufficiency       = p(x) - p(only top-k% words):     lower is better")
    header = "  ".join(f"{'k=' + format(k, '.0%'):>13}" for k in TOP_K)
    print(f"  {'method':<14}{'':<6}{header}")
    for method, by_k in faith.items():
        for measure in ("comprehensiveness", "sufficiency"):
            cells = "  ".join(f"{by_k[k][measure]:>13.3f}" for k in TOP_K)
            print(f"  {method:<14}{measure[:4]:<6}{cells}")
    output = {"cpu": result, "rank_agreement": agreement,
              "rank_agreement_ig_1_step": agreement_one_step,
              "faithfulness": {m: {str(k): v for k, v in by_k.items()}
                               for m, by_k in faith.items()}}
    if torch.cuda.is_available():
        gpu = gpu_speed(torch.device("cuda"), n=args.gpu_n)
        output["gpu"] = gpu
        print(f"\n  {gpu['device']}: BERT-base, {GPU_LENGTH} tokens, {GPU_STEPS} steps: "
              f"{gpu['samples_per_s']:.0f} samples/s (target >= {GPU_TARGET:.0f}); "
              f"mean |delta| {gpu['ig_abs_delta_mean']:.1e}")
    else:
        print("\n  no CUDA: GPU section skipped")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(output, f, indent=2)


if __name__ == "__main__":
    main()
