"""Which Label Studio to talk to, from ``config.studio`` and the environment.

URL: ``[studio] url``, else $LABEL_STUDIO_URL, else the local server `relabeler studio up`
started for ``[studio] data_dir``. Token: $``[studio] api_key_env`` (LABEL_STUDIO_API_KEY), else,
for that local server only, the token ``studio up`` created.
"""

from __future__ import annotations

import logging
import os
import re

from relabeler.config import StudioConfig
from relabeler.plugin.client import URL_ENV, StudioClient, StudioError
from relabeler.plugin.server import CHECKED_VERSIONS, read_credentials, running_server
from relabeler.redact import mask_url

log = logging.getLogger(__name__)

#: the servers whose version was checked in this process: each is asked once
_CHECKED: set[str] = set()


def resolve_url_and_token(studio: StudioConfig) -> tuple[str, str, str]:
    """(url, token, where the token came from) for ``config.studio``."""
    key_env = studio.api_key_env
    url = studio.url or os.environ.get(URL_ENV, "")
    token = os.environ.get(key_env, "")
    source = key_env
    data_dir = studio.data_dir
    local = running_server(data_dir)
    if not url:
        if local is None:
            raise StudioError(f"no Label Studio to talk to: set [studio] url or {URL_ENV}, or "
                              f"start a local one with `relabeler studio up`")
        url = local.url
    elif not url.startswith(("http://", "https://")):
        where = "[studio] url" if studio.url else URL_ENV
        raise StudioError(f"{where}: expected the http(s) URL of a Label Studio server, got "
                          f"{mask_url(url)!r}")
    if not token:
        credentials = read_credentials(data_dir)
        if credentials is not None and local is not None and url.rstrip("/") == local.url:
            token, source = credentials.token, f"the local server's {data_dir}"
    if not token:
        raise StudioError(f"no Label Studio API token: set {key_env}")
    return url, token, source


def client_from_config(studio: StudioConfig) -> StudioClient:
    # httpx logs every request at INFO; the CLI's INFO log should show relabeler's steps
    if logging.getLogger("httpx").level == logging.NOTSET:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    url, token, source = resolve_url_and_token(studio)
    log.info("Label Studio at %s (token from %s)", mask_url(url), source)
    client = StudioClient(url, token, token_source=source, retries=studio.retries,
                          ca_bundle=studio.ca_bundle)
    if url not in _CHECKED:
        check_release(client.server_release(), client.shown_url)
        _CHECKED.add(url)
    return client


def _release_key(release: str) -> tuple[int, ...] | None:
    found = re.match(r"(\d+)\.(\d+)\.(\d+)", release)
    return tuple(int(part) for part in found.groups()) if found else None


def check_release(release: str | None, shown_url: str) -> None:
    """StudioError for a server older than the oldest release in
    :data:`~relabeler.plugin.server.CHECKED_VERSIONS` (Label Studio 1.20.0 lists "answered or
    skipped" tasks only as two listings; what an older one does was never looked at); a
    warning for one that says no version or a release not checked."""
    checked = ", ".join(CHECKED_VERSIONS)
    key = _release_key(release or "")
    if key is None:
        said = (f"says it runs {release!r}, not a release number relabeler can compare"
                if release else "does not say which release it runs (/api/version)")
        log.warning("Label Studio at %s %s: relabeler was checked against %s", shown_url, said,
                    checked)
        return
    oldest = CHECKED_VERSIONS[0]
    if key < _release_key(oldest):
        raise StudioError(f"Label Studio {release} at {shown_url} is older than {oldest}, the "
                          f"oldest release relabeler was checked against ({checked}): upgrade "
                          f"the server")
    if release not in CHECKED_VERSIONS:
        log.warning("Label Studio %s at %s: relabeler was checked against %s, not this "
                    "release", release, shown_url, checked)
