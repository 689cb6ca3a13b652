"""The projects ``relabeler serve`` is connected to: every project the run's manifest names, at
start and whenever the manifest gains one while serve runs.

A push, a round (``relabeler next``) or a pull that sends second opinions can make a project
after serve started: an eval-audit, acquisition or second-opinion project, or the first review
project of a serve started before the first push (as a Deployment in a cluster is). Without the
webhook, that project's answers reach the run only by pull's listing: a deletion the server no
longer shows is never known, and the live re-rank hears nothing. :class:`ProjectConnector`
looks at the manifest every ``every`` seconds (one stat while it is unchanged) and connects the
backend and its webhook to the projects not connected yet, after checking that each holds this
run's tasks. A failure there is logged and tried again at the next look; at start it stops
serve, as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from relabeler import artifacts
from relabeler.errors import RelabelerError
from relabeler.plugin.backend_auth import BasicAuth
from relabeler.plugin.client import StudioClient, StudioNotFoundError
from relabeler.queue_plan import CONTROL, FLAGGED, read_manifest
from relabeler.store import RunStore

log = logging.getLogger(__name__)

#: seconds between two looks at the manifest for projects made after serve started
WATCH_EVERY_S = 30.0


class ProjectConnector:
    """Connects the backend at ``url`` to the run's projects (:func:`connect_new`), and keeps
    doing so from a thread (:meth:`start`, :meth:`stop`)."""

    def __init__(self, store: RunStore, client: Callable[[], StudioClient], url: str, *,
                 secret: str, auth: BasicAuth, every: float | None = None,
                 error: type[Exception] = RuntimeError):
        every = WATCH_EVERY_S if every is None else every
        if every <= 0:
            raise ValueError(f"every must be > 0 seconds, got {every}")
        self.store, self.client, self.url = store, client, url
        self.secret, self.auth, self.every, self.error = secret, auth, every, error
        self.connected: set[int] = set()   # projects connected, or gone and left out
        self._seen: str | None = None      # the manifest's version at the last look
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def connect_new(self, *, each: bool = False) -> list[int]:
        """Connect the projects of the manifest not connected yet; returns them. A review
        project gone from Label Studio is an error; a side project gone is left out with a
        warning. Nothing is read from the server while the manifest is unchanged. ``each``:
        a project that fails is logged and tried again at the next look, and does not keep
        the others from being connected (the watch); else the first failure is raised (at
        start, where it stops serve)."""
        from relabeler.plugin.backend import connect_backend
        from relabeler.plugin.push_checks import check_project_owner

        version = self.store.version(artifacts.MANIFEST.path)
        if version is None or version == self._seen:
            return []
        manifest = read_manifest(self.store)
        new = sorted({int(p) for p in manifest["project_id"]} - self.connected)
        # a side project (acquisition, eval audit, second opinions) deleted in Label Studio is
        # left out; the review project is what serve is for
        review = set(manifest.loc[manifest["source"].isin([FLAGGED, CONTROL]), "project_id"])
        side = {int(p): ", ".join(sorted(set(rows["source"]))) + " tasks"
                for p, rows in manifest.groupby("project_id") if p not in review}
        client = self.client() if new else None
        done, failed = [], []
        for project_id in new:
            try:
                try:  # not another run's (a server this run did not push to)
                    check_project_owner(client, project_id, manifest, error=self.error,
                                        nothing="serve registered nothing")
                except StudioNotFoundError:
                    pass  # deleted there: connect_backend says what that means
                connect_backend(client, [project_id], self.url, secret=self.secret,
                                auth=self.auth, optional=side)
            except Exception as exc:
                if not each:
                    raise
                # a failure relabeler names (a project deleted, another run's, the server
                # down) in one line every look; anything else with its traceback
                said = log.error if isinstance(exc, RelabelerError) else log.exception
                said("serve: connecting the backend to project %d failed; trying again in "
                     "%.0f s: %s", project_id, self.every, exc)
                failed.append(project_id)
                continue
            done.append(project_id)
        self.connected.update(done)
        if not failed:  # else the next look, with the manifest unchanged, tries them again
            self._seen = version
        return done

    def start(self) -> ProjectConnector:
        self._thread = threading.Thread(target=self._watch, name="relabeler-projects",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _watch(self) -> None:
        while not self._stop.wait(self.every):
            try:
                new = self.connect_new(each=True)
            except Exception:  # the manifest or Label Studio could not be read at all
                log.exception("serve: connecting the backend to a project made since it "
                              "started failed; trying again in %.0f s", self.every)
                continue
            if new:
                log.info("serve: connected to project(s) %s, pushed after serve started",
                         ", ".join(map(str, new)))
