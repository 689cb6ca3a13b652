"""The report as people read it: the plots (PNG bytes) and the self-contained HTML page, from
the ``report.json`` dict :func:`relabeler.report.build.build_report` makes. Every piece of text
from the data is HTML-escaped; class names and tokens are drawn as they are (no mathtext)."""

from __future__ import annotations

import base64
import html
import io

import numpy as np

from relabeler.report.annotators import render_annotators
from relabeler.report.duplicates import render_duplicates
from relabeler.report.fonts import class_label, class_legend
from relabeler.report.rounds import NO_BETTER, remaining_plot
from relabeler.report.set_aside import render_set_aside
from relabeler.report.shortcuts import PLOTS as SHORTCUT_PLOTS
from relabeler.report.shortcuts import shortcut_html, shortcut_plots
from relabeler.report.stats import change_text, points
from relabeler.report.thin_regions import steered_gain_html, thin_region_html
from relabeler.report.versions import is_default, settings_text, versions_html


def _lift_text(queue: dict) -> str:
    flagged, control = queue["flagged"], queue["random_control"]
    lift, lower = queue.get("lift"), queue.get("lift_lower")
    unread = [name for name, part in (("flagged task", flagged), ("random control", control))
              if not part["reviewed"]]
    if unread:
        return f"n/a (no {' and no '.join(unread)} was reviewed yet)"
    bound = ("the flagged rate's lower 95% limit over the control rate's upper one"
             if lower is not None else "")
    if lift is not None:
        return f"{lift:.1f}x" + (f" (at least {lower:.1f}x: {bound})" if bound else "")
    if not flagged["corrected"]:
        return "n/a (neither the flagged tasks nor the random controls needed a change)"
    # no control needed a change: the ratio has no finite estimate, only its lower bound
    text = "not measurable: no random control needed a change"
    if lower is None:
        return text
    if lower >= 1:
        return f"{text}; at least {lower:.1f}x ({bound})"
    return (f"{text}; not shown to beat random picks ({bound} is {lower:.1f}x, below 1: the "
            f"controls are too few to tell)")


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def plots(report: dict) -> dict[str, bytes]:
    """PNG plots: accuracy vs labels spent, the correction matrix, detection vs budget,
    shortcut tokens and class balance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    acc = report["eval"]["accuracy"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    spent = report["labels_spent"]
    low, high = acc["ci95"]
    ax.errorbar([spent], [acc["after"]], yerr=[[acc["delta"] - low], [high - acc["delta"]]],
                fmt="o", color="tab:green", capsize=4, label="after (95% CI of the gain)")
    ax.plot([0, spent], [acc["before"], acc["after"]], "--", color="grey")
    ax.plot([0], [acc["before"]], "o", color="tab:blue", label="before")
    ax.set_xlabel("labels spent")
    ax.set_ylabel("eval accuracy")
    ax.set_title("Accuracy vs labels spent")
    # outside the axes, right of them: inside, any corner may hold a point or the interval
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, fontsize=8)
    out["accuracy.png"] = _png(fig)
    plt.close(fig)

    matrix = report["correction_matrix"]
    if matrix:
        rows = sorted(matrix)
        cols = sorted({c for r in matrix.values() for c in r})
        values = np.array([[matrix[r].get(c, 0) for c in cols] for r in rows])
        fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(cols), 1.0 + 0.6 * len(rows)))
        ax.imshow(values, cmap="Blues")
        # class names are drawn as they are: parse_math=False, or "$" starts mathtext
        classes = report.get("classes") or []
        ax.set_xticks(range(len(cols)), [class_label(c, classes) for c in cols], rotation=30,
                      ha="right", parse_math=False)
        ax.set_yticks(range(len(rows)), [class_label(r, classes) if r in classes else r
                                         for r in rows], parse_math=False)
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, str(v), ha="center", va="center",
                    color="white" if v > values.max() / 2 else "black")
        ax.set_xlabel("label after review")
        ax.set_ylabel("label before")
        ax.set_title("Corrections")
        out["corrections.png"] = _png(fig)
        plt.close(fig)

    det = report.get("detection") or {}
    if det:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(det["budget"], det["precision"], label="precision")
        ax.plot(det["budget"], det["recall"], label="recall")
        ax.axvline(det["n_flipped"], color="grey", ls=":", label="number of wrong labels")
        ax.set_xlabel("samples reviewed, highest suspect first")
        ax.set_ylabel("share (precision or recall)")
        ax.set_title("Detection against the known wrong labels\n(the ranking scored before "
                     "relabeling, dataset version 0)", fontsize=10)
        ax.legend()
        out["detection.png"] = _png(fig)
        plt.close(fig)
    out.update(shortcut_plots(report.get("shortcuts") or {}, _png))
    out.update(remaining_plot((report.get("rounds") or {}).get("rows") or [], _png))
    return out


def _fmt(value, pct: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" if pct else f"{value:.2f}"


def _rate_ci(part: dict) -> str:
    """A queue rate's interval; n/a where nothing was reviewed (not a measured 0%)."""
    if not part["reviewed"]:
        return "n/a (none reviewed)"
    return f"[{_fmt(part['ci95'][0])}, {_fmt(part['ci95'][1])}]"


def render_html(report: dict, images: dict[str, bytes]) -> str:
    ev = report["eval"]

    def delta_row(name: str, leaf: dict) -> str:
        if leaf["delta"] is None:  # a class's metric one model or both never measured
            change, interval = "n/a", "n/a"
        else:
            low, high = leaf["ci95"]
            change, interval = points(leaf["delta"]), f"[{points(low)}, {points(high)}]"
        return (f"<tr><td>{html.escape(name)}</td><td>{_fmt(leaf['before'])}</td>"
                f"<td>{_fmt(leaf['after'])}</td><td><b>{change}</b></td>"
                f"<td>{interval}</td></tr>")

    rows = [delta_row("accuracy", ev["accuracy"]), delta_row("macro-F1", ev["macro_f1"])]
    for cls, leaves in ev["per_class"].items():  # each with the paired bootstrap's interval
        rows.extend(delta_row(f"{cls}: {name}", leaves[key]) for key, name in (
            ("precision", "precision"), ("recall", "recall"), ("f1", "F1")))
    c = report["corrections"]
    queue = report.get("queue") or {}
    queue_html = ""
    if queue:
        f, r = queue["flagged"], queue["random_control"]
        queue_html = (
            "<h2>The queue</h2><table><tr><th></th><th>reviewed</th><th>corrected</th>"
            "<th>rate</th><th>95% CI</th></tr>"
            f"<tr><td>flagged by relabeler</td><td>{f['reviewed']}</td><td>{f['corrected']}"
            f"</td><td>{_fmt(f['rate'])}</td><td>{_rate_ci(f)}</td></tr>"
            f"<tr><td>random control</td><td>{r['reviewed']}</td><td>{r['corrected']}</td>"
            f"<td>{_fmt(r['rate'])}</td><td>{_rate_ci(r)}</td></tr></table>"
            f"<p>Lift (flagged rate / control rate): <b>{_lift_text(queue)}</b></p>")
    imgs = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(data).decode()}"></figure>' for name, data in images.items()
        if name not in SHORTCUT_PLOTS and name != "burndown.png")
    gain = report["gain_per_100_labels"]
    deduped = (f"; {c['deduped']} duplicate rows dropped (retrain --dedupe)"
               if c.get("deduped") else "")
    if c.get("dedupe_unresolved"):
        deduped += (f"; {c['dedupe_unresolved']} duplicate groups kept whole: their labels "
                    f"tie")
    spent = _spent_html(report.get("labels_spent_parts"),
                        bool((report.get("rounds") or {}).get("rows")))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>relabeler report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 10px;
text-align:right}}td:first-child{{text-align:left}}figure{{display:inline-block;margin:.5em}}
.big{{font-size:1.4em}}</style></head><body>
<h1>What the relabeling bought</h1>
{_stale_html(report.get("stale"))}
<p>Run <code>{html.escape(report['run'])}</code>, dataset version {report['version']},
{ev['n_eval']} eval samples; accuracy's interval: Newcombe's paired score interval, the
other metrics': paired bootstrap ({ev['n_boot']} draws).</p>
<p class="big">Eval accuracy {_fmt(ev['accuracy']['before'])} &rarr;
{_fmt(ev['accuracy']['after'])} ({html.escape(change_text(ev['accuracy']['delta'],
                                                          ev['accuracy']['ci95']))}),
for {report['labels_spent']} labels
({'n/a' if gain is None else f'{gain:+.2f}'} points per 100 labels).</p>
{_settings_html(report)}
{spent}
<table><tr><th>metric</th><th>before</th><th>after</th><th>delta (points)</th>
<th>95% CI</th></tr>{''.join(rows)}</table>
{steered_gain_html(report.get("eval_unsteered") or {})}
{versions_html(report.get("versions") or [])}
<h2>Corrections</h2>
<p>{c['reviewed']} training samples reviewed: {c['changed']} relabeled, {c['dropped']} dropped,
{c['unsure']} marked not sure; {c['acquired']} pool samples acquired{deduped}. Training set
{c['n_train_before']} &rarr; {c['n_train_after']} samples.</p>
{_matrix_html(report.get("correction_matrix") or {})}
{render_set_aside(report.get("set_aside") or {})}
{queue_html}
{_remaining_html(report.get("remaining") or {})}
{render_annotators(report.get("annotators") or {})}
{_rounds_html(report.get("rounds") or {}, images)}
{_eval_audit_html(report.get("eval_audit") or {})}
{shortcut_html(report.get("shortcuts") or {}, images)}
{thin_region_html(report.get("thin_regions") or {})}
{render_duplicates(report.get("duplicates") or {})}
<h2>Plots</h2>{class_legend(report.get("classes") or [])}{imgs}
</body></html>
"""


def _settings_html(report: dict) -> str:
    """The latest version's training settings where any is not a retrain's default: its gain
    is of the answers and those settings together."""
    settings = report.get("settings")
    if is_default(settings):
        return ""
    return (f"<p><b>Version {report['version']} was trained with settings other than the "
            f"defaults: {html.escape(settings_text(settings))}.</b> The gain above is of the "
            f"answers and these settings together.</p>")


def _spent_html(parts: dict | None, burn_down: bool) -> str:
    """What the headline's labels are: one label is one person's answer to one task
    (``burn_down``: the report has one, which counts the review tasks' part)."""
    if not parts:
        return ""
    named = [f"{parts['review']} on review tasks (flagged and random controls)"]
    if parts["acquisition"]:
        named.append(f"{parts['acquisition']} on pool samples acquired")
    if parts["other"]:
        named.append(f"{parts['other']} on other training tasks (counterexamples)")
    audit = (f"; the {parts['eval_audit']} labels of the eval audit are not counted"
             if parts["eval_audit"] else "")
    return (f"<p>Labels spent: one per person's answer to a task (one where the number of "
            f"answers is unknown), on the training and pool samples: {', '.join(named)}"
            f"{audit}."
            + (" The burn-down below counts the review tasks' part." if burn_down else "")
            + "</p>")


def _matrix_html(matrix: dict) -> str:
    """The correction matrix (label before -> label after review) as a table: the plot's
    numbers, readable whatever script the labels are in."""
    if not matrix:
        return ""
    esc = html.escape
    cols = sorted({c for row in matrix.values() for c in row})
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    body = "".join(
        f"<tr><td>{esc(old)}</td>"
        + "".join(f"<td>{matrix[old].get(c, 0)}</td>" for c in cols) + "</tr>"
        for old in sorted(matrix))
    return ("<p>Answers that kept or relabeled a sample, by the label before review (rows; "
            "(pool): acquired pool samples) and the label after (columns):</p>"
            f"<table><tr><th>before \\ after</th>{head}</tr>{body}</table>")


def _audited_gain_html(gain: dict) -> str:
    if not gain:
        return ""

    def cells(leaf: dict) -> str:
        low, high = leaf["ci95"]
        return (f"<td>{_fmt(leaf['before'])}</td><td>{_fmt(leaf['after'])}</td>"
                f"<td><b>{points(leaf['delta'])}</b></td>"
                f"<td>[{points(low)}, {points(high)}]</td>")

    # every answer counts: the labels kept or changed and the rows dropped (the audit's
    # "answered" figure above counts them all)
    audited = gain["reviewed"] + gain["dropped"]
    kept = gain["reviewed"] - gain["changed"]
    return (f"<p>{audited} eval labels audited: {kept} confirmed, {gain['changed']} changed, "
            f"{gain['dropped']} dropped. The gain on the original eval labels beside "
            f"the gain on the audited ones; <b>{100 * gain['from_eval_errors']:+.1f} points</b> "
            "of the measured gain depend on eval labels the audit changed.</p>"
            "<table><tr><th>eval labels</th><th>rows</th><th>before</th><th>after</th>"
            "<th>delta (points)</th><th>95% CI</th></tr>"
            f"<tr><td>original</td><td>{gain['n_eval']}</td>{cells(gain['original'])}</tr>"
            f"<tr><td>audited</td><td>{gain['n_audited_eval']}</td>{cells(gain['audited'])}"
            "</tr></table>")


#: the share of the eval labels it answered the audit changed (or dropped) from which the rows
#: it has not audited are worth a look whatever their chance of a wrong label
SIZABLE_CHANGE = 0.10


def _eval_audit_advice(audit: dict) -> str:
    """Whether the list below deserves a review before the gain is trusted: yes when a row not
    audited yet is likelier wrong than right (wrong_probability 0.5 or more) or the audit
    changed a sizable share (:data:`SIZABLE_CHANGE`) of the labels it answered; else the
    eval labels look mostly right. Without the chances (a ranking scored before the column
    existed) it cannot tell, and says to review."""
    likely = audit.get("likely_wrong_unaudited")
    gain = audit.get("gain") or {}
    answered = gain.get("reviewed", 0) + gain.get("dropped", 0)
    changed = gain.get("changed", 0) + gain.get("dropped", 0)
    audit_text = (f"changed or dropped {changed} of the {answered} eval labels it answered "
                  f"({_fmt(changed / answered)})" if answered else "")
    sizable = bool(answered) and changed / answered >= SIZABLE_CHANGE
    if likely is None:
        return ("Wrong eval labels move the measured gain, and this ranking gives no chance of "
                "a wrong label per row (scored before the column existed); review the top of "
                "this list before trusting the gain.")
    if likely or sizable:
        why = [f"{likely} eval row{'s' * (likely != 1)} not audited yet "
               f"{'has' if likely == 1 else 'have'} a 50% chance or more of a wrong label"
               ] if likely else []
        why += [f"the audit {audit_text}"] if sizable else []
        return (f"Wrong eval labels move the measured gain: {' and '.join(why)}. Review the "
                "top of this list before trusting the gain.")
    highest = audit.get("max_wrong_probability_unaudited")
    top = ("" if highest is None else
           f" (the highest: {highest:.2f})")
    if answered:
        return (f"The audit found the eval labels mostly right: it {audit_text}, and no eval row "
                f"left unaudited has even a 50% chance of a wrong label{top}. The list is "
                "for reference.")
    return (f"No eval row has even a 50% chance of a wrong label{top}: the eval labels look "
            "mostly right. The list is for reference.")


def _eval_audit_html(audit: dict) -> str:
    if not audit.get("ranked"):
        return ("<h2>Eval audit</h2>" + _audited_gain_html(audit["gain"])
                if audit.get("gain") else "")
    chance = any("wrong_probability" in r for r in audit["top"])
    rows = "".join(
        f"<tr><td>{html.escape(str(r['id']))}</td><td>{html.escape(str(r['given_label']))}</td>"
        f"<td>{html.escape(str(r['suggested_label']))}</td><td>{r['suspect_score']:.2f}</td>"
        + (f"<td>{_fmt(r.get('wrong_probability'), pct=False)}</td>" if chance else "")
        + "</tr>" for r in audit["top"])
    audited = audit.get("audited", 0)
    done = (f" The audit has answered {audited} of the ranked rows, left out of the list below."
            if audited else "")
    unaudited = (f"; {audit['high_suspicion_unaudited']} of those not audited yet"
                 if audited and audit["high_suspicion"] else "")
    high = ("" if audit["high_suspicion"] is None else
            f", {audit['high_suspicion']} whose label the model and its neighbours give at most "
            f"a 10% chance of being right (wrong_probability 0.9 or more{unaudited})")
    listed = (f"{_eval_audit_advice(audit)}</p><table><tr><th>eval row</th><th>label</th>"
              "<th>suggested</th><th>score</th>"
              + ("<th>chance the label is wrong</th>" if chance else "")
              + f"</tr>{rows}</table>" if rows else
              "Every ranked eval row has been answered by the audit.</p>")
    return ("<h2>Eval audit</h2><p>The eval labels are checked as the training labels are: "
            f"{audit['ranked']} eval rows ranked (scores/eval_suspects.parquet, scored before "
            f"relabeling by the baseline model, dataset version 0){high}.{done} "
            f"{listed}" + _audited_gain_html(audit.get("gain") or {}))


def _remaining_html(left: dict) -> str:
    if not left:
        return ""
    text = left.get("text") or f"Not available: {left.get('why', 'no estimate')}."
    out = f"<h2>What is left</h2><p>{html.escape(text)}</p>"
    if left.get("available"):
        low, mid, high = left["remaining"]
        nxt = left["next_batch"]["corrections"]
        truth = left.get("true_remaining")
        out += ("<table><tr><th></th><th>estimate</th><th>95% interval</th></tr>"
                f"<tr><td>wrong labels left in unreviewed rows</td><td>{mid:.0f}</td>"
                f"<td>[{low:.0f}, {high:.0f}]</td></tr>"
                f"<tr><td>corrections from the next {left['next_batch']['size']} tasks</td>"
                f"<td>{nxt[1]:.0f}</td><td>[{nxt[0]:.0f}, {nxt[2]:.0f}]</td></tr></table>"
                f"<p>Advice: <b>{left['advice']}</b>"
                + (f" (simulation: {truth} wrong labels really remain)" if truth is not None
                   else "") + "</p>")
    return out


def _rounds_html(rounds: dict, images: dict[str, bytes]) -> str:
    rows = rounds.get("rows") or []
    if not rows:
        return ""

    def interval(row: dict) -> str:
        if row["remaining"] is None:
            return "<td>n/a</td><td>n/a</td>"
        low, mid, high = row["remaining"]
        return f"<td>{mid:.0f}</td><td>[{low:.0f}, {high:.0f}]</td>"

    truth = any(r["true_remaining"] is not None for r in rows)
    body = "".join(
        f"<tr><td>round {r['round']}</td><td>{html.escape(r['mode'])}</td><td>{r['tasks']}</td>"
        f"<td>{r['answered']}</td><td>{r['corrections']}</td><td>{r['labels_spent']}</td>"
        f"{interval(r)}<td>{html.escape(str(r['advice'] or 'n/a'))}</td>"
        + (f"<td>{r['true_remaining']}</td>" if truth else "") + "</tr>" for r in rows)
    random_rounds = [r["round"] for r in rows if r["mode"] == "random"]
    honest = (f"<p><b>Rounds {', '.join(map(str, random_rounds))} used random picks.</b> "
              f"{html.escape(NO_BETTER)}</p>" if random_rounds else "")
    plot = images.get("burndown.png")
    figure = (f'<figure><img alt="burn-down" src="data:image/png;base64,'
              f'{base64.b64encode(plot).decode()}"></figure>' if plot else "")
    return ("<h2>Rounds: the burn-down</h2>"
            f"<p>{html.escape(rounds.get('text', ''))}</p>{honest}"
            "<table><tr><th>round</th><th>picks</th><th>tasks</th><th>answered</th>"
            "<th>corrections</th><th>labels spent (review)</th><th>wrong labels left (est.)</th>"
            "<th>95% interval</th><th>advice</th>"
            + ("<th>really left (simulation)</th>" if truth else "") + f"</tr>{body}</table>"
            + figure)


def _stale_html(stale: str | None) -> str:
    return (f"<p style='border:2px solid #D55E00;padding:.5em'><b>Out of date:</b> "
            f"{html.escape(stale)}</p>" if stale else "")
