"""The report's "Thin regions" section: where the training data is thin, named.

Reads ``scores/thin_regions.parquet`` (written by ``relabeler score``,
:mod:`relabeler.jobs.coverage`): each region of under-covered eval and pool samples with its
size, the words that set it apart and the texts of its least covered members. A run scored
before the table existed leaves the section out.
"""

from __future__ import annotations

import html

from relabeler import artifacts
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
             "<code>scores/acquire.parquet</code> proposes covers them.</p>")
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
