"""The run's Label Studio projects: found or made (:func:`ensure_project`), their titles, the
labeling spec their tasks are built for, and the manifest reconciled against the tasks they
hold (:func:`reconcile`, after a push that died midway). Push, pull, ``next`` and the
re-rank share them."""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime

import pandas as pd

from relabeler import artifacts
from relabeler.plugin.client import StudioClient, StudioNotFoundError
from relabeler.plugin.labeling import LabelingSpec
from relabeler.plugin.push_checks import PushError, check_project_owner
from relabeler.plugin.tasks import MODEL_VERSION, PRIORITY_FIELD, SAMPLE_ID_FIELD
from relabeler.store import RunStore

log = logging.getLogger(__name__)

MANIFEST = artifacts.MANIFEST.path
TITLE_LIMIT = 50  # Label Studio refuses longer project titles
#: the Data Manager tab sorted by the queue's order (the task data's priority)
PRIORITY_VIEW = "Priority queue"


def utc_now() -> pd.Timestamp:
    """The time a task is recorded as sent (``pushed_at``)."""
    return pd.Timestamp(datetime.now(UTC))


#: what to change when a side project the manifest records was deleted in Label Studio
GONE_ACQUISITION = ("Only push sends to the acquisition project (pull and next go on without "
                    "it), and it does not send the run's acquisition or counterexamples again "
                    "into a new project: to acquire again, start a new run")
#: the way out where the review project of a run is gone
NEW_RUN = ("To start again, make a new run on the same data (`relabeler run --run NEW_DIR "
           f"...`): its push creates a new project; this run's answers stay in its "
           f"{artifacts.CORRECTIONS.path}")
GONE_EVAL_AUDIT = ("To go on without the eval audit, push with --set "
                   "studio.eval_audit_budget=0")


def ensure_project(client: StudioClient, title: str, spec: LabelingSpec, *, overlap: int,
                   known_id: int | None, manifest: pd.DataFrame | None = None,
                   mine: Collection[int] = (),
                   way_out: str = NEW_RUN) -> int:
    """The project: the manifest's (it must still exist), else an empty one of that title (a
    push that died before recording it), else a new one. A project of that title holding tasks
    this run did not record is another run's (two run directories of the same name share the
    default title): a PushError, so that one run's answers never land in another's. So is the
    manifest's project when its tasks that ``manifest`` records hold other samples (another
    server, or one that lost its database: :func:`check_project_owner`), refused before
    anything is changed there. ``mine``: the projects the run's manifest holds tasks in
    (counterexamples join the acquisition project). The manifest's project deleted in Label
    Studio: a PushError ending in ``way_out`` (what to change to go on without it)."""
    if known_id is not None:
        try:
            project = client.get_project(known_id)
        except StudioNotFoundError:
            raise PushError(
                f"Label Studio project {known_id}{f' {title!r}' if title else ''}, which "
                f"{MANIFEST} records, is gone from {client.shown_url}: it was deleted. Nothing "
                f"was sent; the answers pulled from it before stay in "
                f"labels/corrections.parquet. {way_out}") from None
        if manifest is not None:
            check_project_owner(client, known_id, manifest)
    else:
        project = client.find_project(title)
        if project is not None and project.task_count and project.id not in mine:
            raise PushError(
                f"Label Studio project {project.id} {title!r} already holds "
                f"{project.task_count} tasks that this run did not send (another run's, "
                f"perhaps one whose run directory has the same name): name another project "
                f"with --project-title (studio.project_title), or delete that one; nothing "
                f"was sent")
        project = project or client.create_project(
            title, spec.xml, overlap=overlap, model_version=MODEL_VERSION,
            description="Suspect labels from relabeler, highest priority first.")
    LabelingSpec.from_config(project.label_config).check_classes(spec.classes)
    if project.sampling != "Sequential sampling" or project.model_version != MODEL_VERSION:
        client.update_project(project.id, sampling="Sequential sampling",
                              model_version=MODEL_VERSION)
    return project.id


def project_spec(client: StudioClient, project_id: int) -> LabelingSpec:
    """The spec of the project's own labeling config, which its tasks are built for: a project
    made by an earlier relabeler keeps the config it was made with (one without the evidence
    window's page gets the window in its panel, :func:`~relabeler.plugin.tasks.build_task`)."""
    return LabelingSpec.from_config(client.get_project(project_id).label_config)


def reconcile(client: StudioClient, manifest: pd.DataFrame, project_id: int) -> pd.DataFrame:
    """Fill task ids of pending rows from the server and warn about foreign tasks. Only asks the
    server when the manifest and the project's task count disagree."""
    rows = manifest["project_id"] == project_id
    pending = rows & manifest["task_id"].isna()
    server_count = client.get_project(project_id).task_count
    if not pending.any() and server_count == int(rows.sum()):
        return manifest
    known = manifest.loc[rows & manifest["task_id"].notna(), "task_id"]
    on_server = client.task_sample_ids(project_id, SAMPLE_ID_FIELD)
    by_sample = {}
    for task_id, sample_id in sorted(on_server.items()):
        by_sample.setdefault(sample_id, task_id)
    manifest = manifest.copy()
    filled = 0
    for idx in manifest.index[pending]:
        task_id = by_sample.get(manifest.at[idx, "id"])
        if task_id is not None:
            manifest.at[idx, "task_id"] = task_id
            manifest.at[idx, "pushed_at"] = utc_now()
            filled += 1
    mine = set(manifest.loc[rows, "id"])
    foreign = sorted(set(by_sample) - mine)
    if filled:
        log.warning("push: %d tasks of an interrupted push were found on the server and are "
                    "not sent again", filled)
    if foreign:
        log.warning("push: project %d holds %d tasks relabeler did not record (e.g. %s); they "
                    "are left alone", project_id, len(foreign), foreign[:3])
    missing = set(known) - set(on_server)
    if missing:
        gone = sorted(manifest.loc[rows & manifest["task_id"].isin(missing), "id"])
        more = f" and {len(gone) - 10} more" if len(gone) > 10 else ""
        log.warning("push: %d tasks in the manifest are gone from project %d (deleted in Label "
                    "Studio?): samples %s%s. They stay in %s, so push and `next` do not send "
                    "these samples again; answers pulled from them before stay in %s. To label "
                    "one, write its label into %s by hand (README, \"Corrections made outside "
                    "Label Studio\")", len(missing), project_id,
                    ", ".join(map(repr, gone[:10])), more, MANIFEST, artifacts.CORRECTIONS.path,
                    artifacts.CORRECTIONS.path)
    return manifest


def acquisition_title(title: str) -> str:
    suffix = " (acquisition)"
    return title[: TITLE_LIMIT - len(suffix)] + suffix


def eval_audit_title(title: str) -> str:
    suffix = " (eval audit)"
    return title[: TITLE_LIMIT - len(suffix)] + suffix


def default_title(store: RunStore) -> str:
    name = store.uri.rstrip("/").rsplit("/", 1)[-1] or "run"
    return f"relabeler: {name}"[:TITLE_LIMIT]


def ensure_priority_view(client: StudioClient, project_id: int) -> int:
    """The project's "Priority queue" tab, sorted by the tasks' priority as numbers (also on
    a Label Studio that keeps its data in PostgreSQL, where text order puts 10 before 2)."""
    column = f"tasks:data.{PRIORITY_FIELD}"
    return client.ensure_view(project_id, PRIORITY_VIEW, [column], numbers=[column])
