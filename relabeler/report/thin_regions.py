"""The report's "Thin regions" section: where the training data is thin, named.

Reads ``scores/thin_regions.parquet`` (written by ``relabeler score``,
:mod:`relabeler.jobs.coverage`): each region of under-covered eval and pool samples with its
size, the words that set it apart and the texts of its least covered members. A run scored
before the table existed leaves the section out.

:func:`steered_gain` is the eval gain without the eval rows that chose acquired samples: with
``[score] acquire_targets = "eval"`` the picks are chosen to fix labeled eval rows (the stable
``acquire_eval_share`` of them), so once they join the training set those rows are no fair test
of the gain.
"""

from __future__ import annotations

import html

import pandas as pd

from relabeler import artifacts
from relabeler.report.stats import change_text, paired_gain
from relabeler.selectors.eval_support import steering
from relabeler.store import RunStore

#: regions shown
TOP = 10


def thin_region_section(store: RunStore) -> dict:
    """The section's numbers; {} when the run has no thin-region table."""
    if not store.exists(artifacts.THIN_REGIONS.path):
        return {}
    regions = store.read_table(artifacts.THIN_REGIONS.path).to_pandas().sort_values(
        ["n", "region"], ascending=[False, True], kind="stable")
    return {"n_regions": int(len(regions)),
            "n_samples": int(regions["n"].sum()) if len(regions) else 0,
            "top": [{"region": int(r.region), "n": int(r.n), "n_eval": int(r.n_eval),
                     "n_pool": int(r.n_pool), "coverage_mean": float(r.coverage_mean),
                     "representation_mean": float(r.representation_mean),
                     "terms": [str(t) for t in r.terms],
                     "examples": [" ".join(str(t).split()) for t in r.example_texts]}
                    for r in regions.head(TOP).itertuples(index=False)]}


def thin_region_html(section: dict) -> str:
    """The section as HTML; empty when the run has no thin-region table."""
    if not section:
        return ""
    esc = html.escape
    intro = ("<h2>Thin regions</h2><p>Eval and pool samples the training data barely covers: "
             "few close training samples, or close ones of another class than the model "
             "predicts, or a neighbourhood where training rows are rarer than in the data as a "
             "whole (representation below 1). They are grouped into regions, each named by the "
             "words that set its texts apart. Labeling the pool samples "
             "<code>scores/acquire.parquet</code> proposes covers them.</p>"
             "<p><i>Scored before relabeling (dataset version 0): coverage is measured "
             "against the baseline training set, without the pool samples acquired "
             "since.</i></p>")
    if not section["top"]:
        return intro + "<p><b>None found</b>: no eval or pool sample is under-covered.</p>"
    rows = "".join(
        f"<tr><td>{r['region']}</td><td>{r['n']}</td><td>{r['n_eval']}</td>"
        f"<td>{r['n_pool']}</td><td>{r['coverage_mean']:.2f}</td>"
        f"<td>{r['representation_mean']:.2f}</td>"
        f"<td style='text-align:left'>{esc(', '.join(r['terms'])) or 'n/a'}</td>"
        f"<td style='text-align:left'>{'<br>'.join(esc(x[:160]) for x in r['examples'])}"
        f"</td></tr>" for r in section["top"])
    return (intro + f"<p><b>{section['n_samples']}</b> under-covered samples in "
            f"{section['n_regions']} regions; the largest {len(section['top'])}:</p>"
            "<table><tr><th>region</th><th>samples</th><th>eval</th><th>pool</th>"
            "<th>coverage</th><th>representation</th><th>words</th><th>least covered texts"
            f"</th></tr>{rows}</table>")


def steered_gain(store: RunStore, sub: RunStore, before: pd.DataFrame, after: pd.DataFrame,
                 classes: list[str]) -> dict:
    """The accuracy change on the eval rows that could not steer acquisition, when acquired
    samples of dataset version ``sub`` were picked with eval labels; {} when none was.
    ``before``/``after``: both models' eval predictions, id-indexed, same rows."""
    if not (store.exists(artifacts.ACQUIRE.path) and store.exists(artifacts.SUMMARY.path)):
        return {}
    share = (store.read_json(artifacts.SUMMARY.path).get("acquisition") or {}).get("eval_share")
    picks = store.read_table(artifacts.ACQUIRE.path).to_pandas()
    if share is None or "targets" not in picks.columns:  # scored before picks said who chose
        return {}
    train = sub.read_table(artifacts.TRAIN.path, columns=["id", "label_source"]).to_pandas()
    acquired = train.loc[train["label_source"] == "acquired", "id"]
    by_eval = int(picks.loc[picks["targets"] == "eval", "id"].isin(acquired).sum())
    if not by_eval:
        return {}
    steered = steering(before.index.to_numpy(dtype=object), share)
    out = {"picks": by_eval, "acquired": int(len(acquired)), "eval_share": float(share),
           "n_steering": int(steered.sum()), "n_eval": int((~steered).sum())}
    if out["n_eval"]:
        out["accuracy"] = paired_gain(before, after, classes, rows=~steered)["accuracy"]
    return out


def steered_gain_html(gain: dict) -> str:
    """A warning under the headline gain; empty when no acquired sample was picked with eval
    labels."""
    if not gain:
        return ""
    text = (f"<p><b>Acquisition was steered by eval labels.</b> {gain['picks']} of the "
            f"{gain['acquired']} acquired pool samples were picked to fix labeled eval rows "
            "(<code>score.acquire_targets = \"eval\"</code>), so the "
            f"{gain['n_steering']} eval rows allowed to steer it "
            f"(<code>score.acquire_eval_share = {gain['eval_share']:g}</code>) are no fair "
            "test of them. ")
    if "accuracy" not in gain:
        return text + "No eval row is left that did not steer it: the gain is not measured.</p>"
    acc = gain["accuracy"]
    return text + (f"On the other {gain['n_eval']} eval rows: accuracy "
                   f"{100 * acc['before']:.1f}% &rarr; {100 * acc['after']:.1f}% "
                   f"({html.escape(change_text(acc['delta'], acc['ci95']))}).</p>")
