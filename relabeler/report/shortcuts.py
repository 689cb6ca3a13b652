"""The report's "Shortcuts and balance" section: the tokens a class leans on and thin classes.

Reads ``scores/shortcuts.parquet``, ``scores/balance.parquet`` and the test's settings in
``scores/summary.json`` (all written by ``relabeler score``, before any relabeling: the
baseline dataset's labels, version 0, and the baseline model's eval recall) and
``dataset/train.parquet`` for example texts. The eval recall the lowest classes are named by
is the retrained model's where the report passes it. Absent tables (a run scored before the
step existed) leave the section out.
"""

from __future__ import annotations

import base64
import html

import numpy as np
import pandas as pd

from relabeler import artifacts
from relabeler.report.fonts import class_label, class_legend, drawable
from relabeler.selectors.shortcuts import contains_token
from relabeler.store import RunStore

#: Tokens shown in the table and the plot; example texts per token; classes named as thin.
TOP, EXAMPLES, LOWEST = 15, 2, 3
PLOTS = ("shortcuts.png", "balance.png")


def _clip(text: str, width: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 1] + "\u2026"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def shortcut_section(store: RunStore, recall: dict[str, float] | None = None,
                     version: int | None = None) -> dict:
    """The section's numbers; {} when the run has no shortcut tables. ``recall``: class ->
    eval recall of dataset version ``version``'s model (the report's "after"), which the
    lowest classes are named by; None: by the baseline model's (``scores/balance.parquet``)."""
    if not (store.exists(artifacts.SHORTCUTS.path) and store.exists(artifacts.BALANCE.path)):
        return {}
    found = store.read_table(artifacts.SHORTCUTS.path).to_pandas().sort_values("rank")
    balance = store.read_table(artifacts.BALANCE.path).to_pandas()
    summary = (store.read_json(artifacts.SUMMARY.path).get("shortcuts", {})
               if store.exists(artifacts.SUMMARY.path) else {})
    train = store.read_table(artifacts.TRAIN.path, columns=["text", "label"]).to_pandas()
    top = []
    for row in found.head(TOP).itertuples(index=False):
        texts = train["text"][train["label"] == row[1]].fillna("")
        hits = texts[contains_token(texts, row.token)]
        attribution = None if pd.isna(row.attribution) else float(row.attribution)
        top.append({"token": row.token, "class": row[1], "count": int(row.count),
                    "class_share": float(row.class_share), "z": float(row.z),
                    "p_value": float(row.p_value), "association": float(row.association),
                    "attribution": attribution,
                    "examples": [_clip(t) for t in hits.head(EXAMPLES)]})
    rows = [{"class": r[0], "count": int(r.count), "share": float(r.share),
             "eval_count": int(r.eval_count),
             "eval_recall": None if pd.isna(r.eval_recall) else float(r.eval_recall)}
            for r in balance.itertuples(index=False)]
    key = "eval_recall"
    if recall is not None:
        key = "eval_recall_after"
        for r in rows:  # a class with no eval row has no recall (scikit-learn's 0 is not one)
            r[key] = (None if r["class"] not in recall or not r["eval_count"]
                      else float(recall[r["class"]]))
    with_recall = [r for r in rows if r[key] is not None]
    # the lowest LOWEST below 100%, and never every class (of two, the one)
    lowest = sorted((r for r in with_recall if r[key] < 1),
                    key=lambda r: (r[key], r["count"]))[:min(LOWEST, max(1, len(with_recall) - 1))]
    return {"alpha": summary.get("alpha"), "n_tested": summary.get("n_tested"),
            "p_threshold": summary.get("p_threshold"), "min_count": summary.get("min_count"),
            "n_significant": int(summary.get("n_significant", len(found))), "top": top,
            "balance": rows, "lowest_recall": [r["class"] for r in lowest],
            # the classes at the lowest recall listed, where more of them than listed are
            "lowest_recall_tied": (sum(r[key] == lowest[0][key] for r in with_recall)
                                   if lowest else 0),
            "recall_version": None if recall is None else version}


def shortcut_plots(section: dict, png) -> dict[str, bytes]:
    """The top tokens' association by class, and the class shares with eval recall. ``png``
    turns a matplotlib figure into PNG bytes (the report's own)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, bytes] = {}
    if not section:
        return out
    top = section["top"]
    classes = sorted({t["class"] for t in top} | {r["class"] for r in section["balance"]})
    colors = {c: plt.cm.tab10(i % 10) for i, c in enumerate(classes)}
    if top:
        fig, ax = plt.subplots(figsize=(6, 0.35 * len(top) + 1.2))
        ys = np.arange(len(top))[::-1]
        ax.barh(ys, [t["association"] for t in top], color=[colors[t["class"]] for t in top])
        # tokens and class names are drawn as they are ("$" would start mathtext); a token
        # the fonts cannot draw (CJK without a CJK font) by its row of the table: "#3"; a
        # class name by its number where they cannot draw it, cut and numbered where it is
        # long, as on the balance plot: the bars' colours alone have no legend here
        order = [r["class"] for r in section["balance"]]
        ax.set_yticks(ys, [f"{t['token'] if drawable(t['token']) else f'#{i + 1}'} "
                           f"({class_label(t['class'], order)})"
                           for i, t in enumerate(top)], parse_math=False)
        for y, t in zip(ys, top, strict=True):
            ax.text(t["association"], y, f"  z={t['z']:.0f}, n={t['count']}", va="center",
                    fontsize=8)
        ax.set_xlim(0, 1.25)
        ax.set_xlabel("association (0 = as the class prior, 1 = only in this class)")
        ax.set_title("Shortcut candidates")
        out["shortcuts.png"] = png(fig)
        plt.close(fig)
    rows = section["balance"]
    fig, ax = plt.subplots(figsize=(1.5 + 0.7 * len(rows), 3.5))
    xs = np.arange(len(rows))
    ax.bar(xs, [r["share"] for r in rows], color=[colors[r["class"]] for r in rows])
    version = section.get("recall_version")
    recall = [np.nan if r["eval_recall"] is None else r["eval_recall"] for r in rows]
    ax.plot(xs, recall, "o", mfc="none", mec="black" if version is None else "grey",
            label="eval recall, baseline model")
    if version is not None:
        after = [np.nan if r["eval_recall_after"] is None else r["eval_recall_after"]
                 for r in rows]
        ax.plot(xs, after, "ko", label=f"eval recall, version {version} model")
    classes = [r["class"] for r in rows]  # the run's classes, in their order
    ax.set_xticks(xs, [class_label(c, classes) for c in classes], rotation=30, ha="right",
                  parse_math=False)
    ax.set_ylim(0, 1.05)
    ax.set_title("Class balance (training rows as scored: version 0)", fontsize=10)
    # one swatch per class (the bars' one legend entry would show the first class's colour)
    from matplotlib.patches import Patch

    swatches = [Patch(color=colors[c], label=f"{class_label(c, classes)}: share of training "
                      f"rows") for c in classes]
    if len(classes) > 10:  # tab10 repeats its colours: the axis names each bar instead
        swatches = [Patch(color="lightgrey", label="share of training rows")]
        for bar in ax.patches:
            bar.set_color("lightgrey")
    handles = swatches + ax.get_legend_handles_labels()[0]
    legend = ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.25),
                       fontsize=8, ncols=2)
    for text in legend.get_texts():  # class names as they are ("$" would start mathtext)
        text.set_parse_math(False)
    out["balance.png"] = png(fig)
    plt.close(fig)
    return out


def shortcut_html(section: dict, images: dict[str, bytes]) -> str:
    """The section as HTML; empty when the run has no shortcut tables."""
    if not section:
        return ""
    esc = html.escape
    threshold = section["p_threshold"]
    rule = (f"A token (or word pair) seen in at least {section['min_count']} training texts is "
            f"reported for a class when its exact binomial tail under the class prior is below "
            f"<b>p &lt; {threshold:.2g}</b> (alpha {section['alpha']} Bonferroni-corrected over "
            f"{section['n_tested']} token-class pairs tested); z is Gardner et al.'s "
            f"(share in the class - prior) / its standard error; association is the lower 99% "
            f"bound of the share in the class, 0 at the class prior, 1 when the token occurs "
            f"in no other class. A token ranks by the better of its places by z and by "
            f"association."
            if threshold is not None else
            "No token occurs often enough to be tested.")
    if section["top"]:
        rows = "".join(
            f"<tr><td>{i + 1}</td><td>{esc(t['token'])}</td><td>{esc(t['class'])}</td>"
            f"<td>{t['association']:.2f}</td><td>{t['z']:.1f}</td>"
            f"<td>{t['count']}</td><td>{100 * t['class_share']:.0f}%</td>"
            f"<td>{_pct(t['attribution'])}</td><td style='text-align:left'>"
            f"{'<br>'.join(esc(x) for x in t['examples'])}</td></tr>"
            for i, t in enumerate(section["top"]))
        found = (f"<p><b>{section['n_significant']}</b> token-class pairs pass; the top "
                 f"{len(section['top'])}. Words that carry a class's meaning appear here too: "
                 f"look for ones that should not decide it (a source, a template, a name)."
                 f"</p><table><tr><th>#</th><th>token</th><th>class</th><th>association</th>"
                 f"<th>z</th>"
                 f"<th>texts</th>"
                 f"<th>in class</th><th>attribution share</th><th>examples</th></tr>{rows}"
                 f"</table>")
    else:
        found = "<p><b>None found</b>: no token passes the threshold.</p>"
    version = section.get("recall_version")
    key = "eval_recall" if version is None else "eval_recall_after"
    balance = "".join(
        f"<tr><td>{esc(r['class'])}</td><td>{r['count']}</td><td>{100 * r['share']:.1f}%</td>"
        f"<td>{r['eval_count']}</td><td>{_pct(r['eval_recall'])}</td>"
        + ("" if version is None else f"<td>{_pct(r['eval_recall_after'])}</td>") + "</tr>"
        for r in section["balance"])
    recall = {r["class"]: r[key] for r in section["balance"]}
    lowest = ", ".join(f"{esc(c)} ({_pct(recall.get(c))})"
                       for c in section["lowest_recall"]) or "n/a"
    whose = ("the baseline model's, scored before relabeling" if version is None else
             f"the version {version} model's")
    tied = section.get("lowest_recall_tied", 0)
    if tied > len(section["lowest_recall"]):  # the fewest training rows listed first
        lowest += (f"; {tied} classes are at {_pct(recall.get(section['lowest_recall'][0]))},"
                   f" those with the fewest training rows listed")
    lowest_html = f"<p>Lowest eval recall ({whose}): <b>{lowest}</b>.</p>"
    if not section["lowest_recall"] and any(v is not None for v in recall.values()):
        lowest_html = f"<p>Eval recall ({whose}): 100.0% in every class with eval rows.</p>"
    imgs = "".join(
        f'<figure><img alt="{esc(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(images[name]).decode()}"></figure>' for name in PLOTS
        if name in images)
    return (f"<h2>Shortcuts and balance</h2><p><i>Scored before relabeling (dataset version "
            f"0): the tokens, the training rows and their labels are the baseline's.</i></p>"
            f"<p>{rule}</p>{found}"
            f"<table><tr><th>class</th><th>training rows (version 0)</th><th>share</th>"
            f"<th>eval rows</th><th>eval recall, baseline model</th>"
            + ("" if version is None else f"<th>eval recall, version {version} model</th>")
            + f"</tr>{balance}</table>"
            f"{lowest_html}"
            f"{class_legend([r['class'] for r in section['balance']])}{_token_note(section)}"
            f"{imgs}")


def _token_note(section: dict) -> str:
    """HTML saying what "#N" on the shortcut plot is; empty when it draws every token."""
    if all(drawable(t["token"]) for t in section["top"]):
        return ""
    return ("<p>The shortcut plot names a token its fonts cannot draw #N: row N of the table "
            "of tokens above.</p>")
