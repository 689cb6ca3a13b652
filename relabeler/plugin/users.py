"""Label Studio users for simulated annotators (the demo, the tests).

The open-source server has no API that creates a user with a password; its sign-up form does.
:func:`annotator_token` signs a user up (or, when the email is taken, logs in) and returns their
API token, so each simulated annotator answers as a distinct Label Studio user and ``pull``
sees distinct annotators.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import httpx

from relabeler.plugin.client import StudioAuthError

#: where the demo keeps its simulated annotators' passwords (mode 0600, in the server's data dir)
ANNOTATORS_FILE = "annotators.json"


def _token(http: httpx.Client) -> str | None:
    response = http.get("/api/current-user/token")
    return response.json().get("token") if response.status_code == 200 else None


def _form(http: httpx.Client, url: str, path: str, email: str, password: str) -> None:
    http.get(path)
    http.post(path, data={"email": email, "password": password,
                          "csrfmiddlewaretoken": http.cookies.get("csrftoken", "")},
              headers={"Referer": f"{url}{path}"})


def annotator_token(url: str, email: str, password: str, *, timeout: float = 60.0) -> str:
    """The API token of the Label Studio user ``email``: signed up through the form, or logged
    in when the email is taken. StudioAuthError when neither works (a wrong password for an
    existing user, or sign-up closed)."""
    url = url.rstrip("/")
    with httpx.Client(base_url=url, timeout=timeout, follow_redirects=True) as http:
        _form(http, url, "/user/signup/", email, password)
        token = _token(http)
        if token is None:
            _form(http, url, "/user/login/", email, password)
            token = _token(http)
    if token is None:
        raise StudioAuthError(f"Label Studio at {url} neither signed up nor logged in {email} "
                              f"(sign-up closed, or the user exists with another password)")
    return token


def simulated_annotators(url: str, data_dir: str | os.PathLike, names: list[str]
                         ) -> dict[str, str]:
    """name -> API token for users ``<name>@relabeler.local`` of the local server whose data
    folder is ``data_dir``; their passwords are made once and kept in
    ``data_dir/annotators.json`` (mode 0600), so a rerun logs the same users in."""
    path = Path(data_dir) / ANNOTATORS_FILE
    passwords = json.loads(path.read_text()) if path.exists() else {}
    for name in names:
        passwords.setdefault(name, secrets.token_urlsafe(16))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(passwords, out)
    return {name: annotator_token(url, f"{name}@relabeler.local", passwords[name])
            for name in names}
