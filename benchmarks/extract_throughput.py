"""Texts/s of the extract actor against a naive loop, on the same texts in one run.

The naive baseline is the loop one writes first: texts in their original order, fixed batches of
32, every batch padded to ``max_length``, fp32. The actor is fed as the extract job feeds it
(``_pending_rows``): longest text first, consecutive batches of ``--batch-size``. Both compute
the same outputs; their probabilities must agree within 1e-3 or the run aborts.

With CUDA present, also: seq/s and MFU of the actor for a BERT-base-sized model (random
weights) at sequence length 128, fed token ids as on a cluster and fed texts.

    .venv/bin/python benchmarks/extract_throughput.py [--n 2000] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from relabeler.data import DEMO_DATASETS
from relabeler.jobs.extract import FeatureExtractor, tokenize_batch
from relabeler.model import encode, final_linear, load_classifier, load_tokenizer, save_model

log = logging.getLogger("extract_throughput")

NAIVE_BATCH_SIZE = 32
PROBS_ATOL = 1e-3
GPU_LENGTH = 128
GPU_BATCH_SIZES = (256, 512, 1024)
GPU_TARGET_SEQ_PER_S = 20_000  # BERT-base at GPU_LENGTH tokens, one H100
# dense bf16 peak per GPU; the first name contained in torch.cuda.get_device_name() wins
PEAK_BF16_FLOPS = (("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989e12),
                   ("H200", 989e12))


def naive_batches(model, tokenizer, texts: list[str], *, max_length: int,
                  device: torch.device) -> Iterator[dict[str, np.ndarray]]:
    """Original order, fixed batches, padded to ``max_length``, fp32. Yields per batch: id (B,),
    embedding (B, D), logits and probs (B, C)."""
    captured: list[torch.Tensor] = []
    hook = final_linear(model).register_forward_pre_hook(
        lambda _module, args: captured.append(args[0]))
    try:
        for start in range(0, len(texts), NAIVE_BATCH_SIZE):
            enc = tokenizer(texts[start:start + NAIVE_BATCH_SIZE], padding="max_length",
                            truncation=True, max_length=max_length, return_tensors="pt")
            with torch.no_grad():
                logits = model(**enc.to(device)).logits
            yield {"id": np.arange(start, start + len(logits)),
                   "embedding": captured.pop().cpu().numpy(), "logits": logits.cpu().numpy(),
                   "probs": logits.softmax(-1).cpu().numpy()}
    finally:
        hook.remove()


def actor_batches(extractor: FeatureExtractor, texts: np.ndarray, label_index: np.ndarray, *,
                  batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Longest text first, consecutive batches, as the job feeds the actor."""
    lengths = np.fromiter(map(len, texts), np.int64, len(texts))
    order = np.argsort(-lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        yield extractor({"text": texts[idx], "label_index": label_index[idx], "id": idx})


def run_passes(passes: dict[str, Iterator[dict]], device: torch.device
               ) -> dict[str, tuple[float, dict[str, np.ndarray]]]:
    """Step the passes batch by batch, always the one with the fewest texts done, timing each
    step: on a shared machine, load from elsewhere then falls on all of them alike. Returns per
    pass its seconds and its outputs back in input order."""
    seconds = dict.fromkeys(passes, 0.0)
    done = dict.fromkeys(passes, 0)
    parts: dict[str, list[dict]] = {name: [] for name in passes}
    active = set(passes)
    while active:
        name = min(active, key=lambda k: (done[k], k))
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        out = next(passes[name], None)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds[name] += time.perf_counter() - started
        if out is None:
            active.discard(name)
            continue
        parts[name].append(out)
        done[name] += len(out["id"])
    results = {}
    for name, chunks in parts.items():
        merged = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
        back = np.argsort(merged["id"], kind="stable")
        results[name] = (seconds[name], {k: v[back] for k, v in merged.items()})
    return results


def best_seconds(make_pass: Callable[[int], Iterator[dict]], n: int, *, warmup: int,
                 device: torch.device, repeats: int) -> float:
    """A warm-up pass over ``warmup`` texts, then the best of ``repeats`` passes over ``n``."""
    run_passes({"warmup": make_pass(warmup)}, device)
    return min(run_passes({"timed": make_pass(n)}, device)["timed"][0] for _ in range(repeats))


def cpu_benchmark(args, model_dir: Path, texts: np.ndarray, label_index: np.ndarray) -> dict:
    cpu = torch.device("cpu")
    torch.set_num_threads(args.threads)
    tokenizer, model = load_tokenizer(model_dir), load_classifier(model_dir)
    extractor = FeatureExtractor(str(model_dir), max_length=args.max_length,
                                 num_threads=args.threads, device="cpu")
    text_list = [str(t) for t in texts]

    def passes(n: int) -> dict[str, Iterator[dict]]:
        return {"naive": naive_batches(model, tokenizer, text_list[:n],
                                       max_length=args.max_length, device=cpu),
                "extract": actor_batches(extractor, texts[:n], label_index[:n],
                                         batch_size=args.batch_size)}

    log.info("warm-up (%d threads)", args.threads)
    run_passes(passes(args.batch_size), cpu)
    naive_s = actor_s = float("inf")
    for repeat in range(args.repeats):
        timings = run_passes(passes(len(texts)), cpu)
        (seconds, naive), (actor_seconds, actor) = timings["naive"], timings["extract"]
        naive_s, actor_s = min(naive_s, seconds), min(actor_s, actor_seconds)
        log.info("repeat %d: naive %.2f s, extract %.2f s", repeat + 1, seconds, actor_seconds)
    probs_diff = float(np.abs(naive["probs"] - actor["probs"]).max())
    if not probs_diff <= PROBS_ATOL:
        raise SystemExit(f"naive and extract probabilities differ by {probs_diff:.2e} "
                         f"(> {PROBS_ATOL}): the two do not compute the same thing")
    mean_tokens = float(actor["n_tokens"].mean())
    log.info("probs agree (max |diff| %.1e; embedding max |diff| %.1e); mean tokens per text "
             "%.1f (the naive loop pads every text to %d)", probs_diff,
             float(np.abs(naive["embedding"] - actor["embedding"]).max()), mean_tokens,
             args.max_length)
    n = len(texts)
    return {"n": n, "threads": args.threads, "mean_tokens": mean_tokens,
            "naive_texts_per_s": n / naive_s, "naive_s": naive_s,
            "extract_texts_per_s": n / actor_s, "extract_s": actor_s,
            "ratio": naive_s / actor_s, "probs_max_abs_diff": probs_diff}


def bert_flops_per_seq(model, length: int) -> float:
    """Forward FLOPs of one sequence: 2 * params per token for the encoder, once per sequence
    for pooler and classifier, plus the two attention matmuls (QK^T and AV)."""
    base = model.base_model
    encoder = sum(p.numel() for p in base.encoder.parameters())
    per_seq = (sum(p.numel() for p in model.parameters()) - encoder
               - sum(p.numel() for p in base.embeddings.parameters()))
    cfg = model.config
    attention = 2 * 2 * length**2 * cfg.hidden_size * cfg.num_hidden_layers
    return 2 * encoder * length + 2 * per_seq + attention


def token_id_batches(extractor: FeatureExtractor, columns: dict[str, np.ndarray],
                     label_index: np.ndarray, n: int, *, batch_size: int
                     ) -> Iterator[dict[str, np.ndarray]]:
    """Token ids from :func:`tokenize_batch`, consecutive batches: how extract feeds the GPU
    actor on a cluster (CPU tasks tokenize, the actor only pads and runs the model)."""
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        yield extractor({**{k: v[idx] for k, v in columns.items()},
                         "label_index": label_index[idx], "id": idx})


def gpu_benchmark(tmp: Path, device: torch.device, *, n: int = 16384, repeats: int = 1,
                  peak_tflops: float | None = None, tokenizer: str | None = None,
                  config=None, batch_sizes: tuple[int, ...] = GPU_BATCH_SIZES) -> dict:
    """seq/s and MFU of the extract actor for BERT-base with random weights at
    ``GPU_LENGTH`` tokens: fed token ids (as on a cluster) and fed texts, per batch size; plus
    the naive fp32 loop and the tokenizer alone. ``tokenizer``: a folder with a 30522-word
    BERT vocabulary (default: the packaged MiniLM's); ``config``: a smaller ``BertConfig`` for
    a dry run on a CPU."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(config or BertConfig(num_labels=2))
    model_dir = tmp / "bert-base"
    save_model(model, load_tokenizer(tokenizer), model_dir, ["negative", "positive"])
    flops_per_seq = bert_flops_per_seq(model, GPU_LENGTH)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    peak = (peak_tflops * 1e12 if peak_tflops else
            next((p for key, p in PEAK_BF16_FLOPS if key in name), None))
    # one-token words, more of them than fit: every text truncates to exactly GPU_LENGTH tokens
    words = np.array("the model reads each text and labels it with a class".split())
    rng = np.random.default_rng(0)
    texts = np.array([" ".join(rng.choice(words, GPU_LENGTH)) for _ in range(n)], dtype=object)
    label_index = np.zeros(len(texts), np.int64)
    extractor = FeatureExtractor(str(model_dir), max_length=GPU_LENGTH, device=str(device))
    check = extractor({"text": texts[:8], "label_index": label_index[:8], "id": np.arange(8)})
    if (check["n_tokens"] != GPU_LENGTH).any():
        raise SystemExit(f"synthetic texts are not {GPU_LENGTH} tokens: {check['n_tokens']}")
    tokens = tokenize_batch(pa.table({"text": pa.array(texts.tolist(), pa.string())}),
                            tokenizer=extractor.tokenizer, max_length=GPU_LENGTH)
    columns = {c: tokens.column(c).to_numpy(zero_copy_only=False) for c in tokens.column_names}
    log.info("%s: %.1f GFLOP per sequence, peak %s", name, flops_per_seq / 1e9,
             f"{peak / 1e12:.0f} TFLOP/s" if peak else "unknown (pass --peak-tflops)")
    results = {"device": name, "flops_per_seq": flops_per_seq, "peak_flops": peak, "batch": {}}
    for batch_size in batch_sizes:
        row = {}
        for feed, make_pass in (
                ("ids", lambda k, bs=batch_size: token_id_batches(
                    extractor, columns, label_index, k, batch_size=bs)),
                ("text", lambda k, bs=batch_size: actor_batches(
                    extractor, texts[:k], label_index[:k], batch_size=bs))):
            seconds = best_seconds(make_pass, len(texts), warmup=batch_size, device=device,
                                   repeats=repeats)
            row[f"{feed}_seq_per_s"] = len(texts) / seconds
        row["seq_per_s"] = row["ids_seq_per_s"]
        row["mfu"] = row["seq_per_s"] * flops_per_seq / peak if peak else None
        results["batch"][batch_size] = row
    started = time.perf_counter()
    for start in range(0, len(texts), batch_sizes[-1]):
        encode(extractor.tokenizer, list(texts[start:start + batch_sizes[-1]]), GPU_LENGTH)
    results["tokenizer_seq_per_s"] = len(texts) / (time.perf_counter() - started)
    naive_model = load_classifier(model_dir).to(device)  # fp32
    tokenizer_, text_list = load_tokenizer(model_dir), [str(t) for t in texts]
    seconds = best_seconds(lambda k: naive_batches(
        naive_model, tokenizer_, text_list[:k], max_length=GPU_LENGTH, device=device),
        len(texts), warmup=NAIVE_BATCH_SIZE, device=device, repeats=repeats)
    results["naive_seq_per_s"] = len(texts) / seconds
    best = max(results["batch"].values(), key=lambda r: r["seq_per_s"])
    results.update(seq_per_s=best["seq_per_s"], mfu=best["mfu"])
    return results


def print_gpu(gpu: dict) -> None:
    print(f"\nGPU: {gpu['device']}, BERT-base (random weights), length {GPU_LENGTH}")
    print(f"{'batch':>8} {'seq/s (ids)':>12} {'MFU':>7} {'seq/s (texts)':>14}")
    for batch_size, row in gpu["batch"].items():
        mfu = f"{row['mfu']:.1%}" if row["mfu"] is not None else "n/a"
        print(f"{batch_size:>8} {row['seq_per_s']:>12,.0f} {mfu:>7} "
              f"{row['text_seq_per_s']:>14,.0f}")
    best = gpu["seq_per_s"]
    print(f"naive fp32 loop, batch {NAIVE_BATCH_SIZE}: {gpu['naive_seq_per_s']:,.0f} seq/s "
          f"(extract {best / gpu['naive_seq_per_s']:.2f}x); tokenizer alone "
          f"{gpu['tokenizer_seq_per_s']:,.0f} seq/s")
    print(f"BERT-base seq/s at length {GPU_LENGTH}: {best:,.0f} "
          f"(target >= {GPU_TARGET_SEQ_PER_S:,} on one H100)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="texts to extract")
    parser.add_argument("--dataset", default="sms-spam", choices=sorted(DEMO_DATASETS))
    parser.add_argument("--model", default=None, help="model folder (default: packaged MiniLM)")
    parser.add_argument("--batch-size", type=int, default=64, help="extract batch size")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=1, help="timed passes; the best counts")
    parser.add_argument("--gpu-n", type=int, default=16384, help="synthetic texts on a GPU")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="peak dense bf16 TFLOP/s for MFU (default: from the GPU name)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    too_small = [k for k in ("n", "batch_size", "max_length", "threads", "repeats", "gpu_n")
                 if getattr(args, k) < 1]
    if too_small:
        parser.error(f"--{too_small[0].replace('_', '-')} must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    frame = DEMO_DATASETS[args.dataset]()
    frame = frame.sample(n=args.n, replace=args.n > len(frame), random_state=0)
    classes = sorted(frame["label"].dropna().unique())
    index = {c: i for i, c in enumerate(classes)}
    texts = frame["text"].to_numpy(dtype=object)
    label_index = np.array([index.get(x, -1) for x in frame["label"]], dtype=np.int64)
    with tempfile.TemporaryDirectory(prefix="extract-bench-") as tmp:
        model_dir = Path(tmp) / "classifier"
        torch.manual_seed(0)  # the new head's weights
        save_model(load_classifier(args.model, classes), load_tokenizer(args.model), model_dir,
                   classes)
        log.info("%d texts of %s, classes %s", len(texts), args.dataset, classes)
        results = {"cpu": cpu_benchmark(args, model_dir, texts, label_index)}
        cpu = results["cpu"]
        print(f"\n{'method':<40} {'texts/s':>9} {'seconds':>8}")
        print(f"{f'naive (fp32, pad to {args.max_length}, batch 32)':<40} "
              f"{cpu['naive_texts_per_s']:>9.1f} {cpu['naive_s']:>8.2f}")
        print(f"{f'extract (longest first, batch {args.batch_size})':<40} "
              f"{cpu['extract_texts_per_s']:>9.1f} {cpu['extract_s']:>8.2f}")
        print(f"mean tokens per text: {cpu['mean_tokens']:.1f}; {args.threads} threads")
        print(f"extract vs naive: {cpu['ratio']:.2f}x (target >= 2x on CPU)")
        if torch.cuda.is_available():
            results["gpu"] = gpu_benchmark(Path(tmp), torch.device("cuda"), n=args.gpu_n,
                                           repeats=args.repeats, peak_tflops=args.peak_tflops)
            print_gpu(results["gpu"])
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
        log.info("results written to %s", args.json)


if __name__ == "__main__":
    main()
