"""What Label Studio answered, in words: the client's errors, the reason a server gives for a
refusal, a token refresh a proxy answered with an error page, and the certificates an HTTPS
server is checked against (:mod:`relabeler.plugin.client` raises and uses them)."""

from __future__ import annotations

import json
import os
import re
import ssl
from typing import Any

import httpx
from label_studio_sdk.core.api_error import ApiError

from relabeler.errors import PluginError

RETRY_STATUS = {429, 500, 502, 503, 504}
REFRESH_PATH = "api/token/refresh/"
CA_BUNDLE_ENV = "REQUESTS_CA_BUNDLE"
TOKEN_HINT = ("Label Studio 1.23 takes a Personal Access Token (Account & Settings); legacy "
              "tokens work only where the organization enabled them")


class StudioError(PluginError):
    """Label Studio answered with an error, or could not be reached."""


class StudioAuthError(StudioError):
    """Label Studio rejected the API token (``status`` 401), or refused the request (403)."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class StudioNotFoundError(StudioError):
    """A project, task or other object is not on the server (any more)."""


class RefreshError(ApiError):
    """Label Studio (or a proxy before it) answered the SDK's token refresh with an error that
    is not JSON; the request the refresh was for was not sent."""


class StudioUnavailableError(StudioError):
    """The server could not be reached, or kept failing (connection errors, 5xx) after retries.

    ``maybe_applied`` is True when a request may have reached the server before it failed;
    ``status`` the last HTTP status it answered (None: it was not reached).
    """

    def __init__(self, message: str, *, maybe_applied: bool, status: int | None = None):
        super().__init__(message)
        self.maybe_applied = maybe_applied
        self.status = status


def tls_verify(ca_bundle: str) -> ssl.SSLContext | bool:
    """What httpx checks a server's certificate with: ``ca_bundle``, else $REQUESTS_CA_BUNDLE
    (what requests, and so Label Studio itself, reads; httpx does not), else True (httpx's
    default: $SSL_CERT_FILE, $SSL_CERT_DIR, certifi's bundle)."""
    where = "[studio] ca_bundle" if ca_bundle else f"${CA_BUNDLE_ENV}"
    path = ca_bundle or os.environ.get(CA_BUNDLE_ENV, "")
    if not path:
        return True
    try:
        if os.path.isdir(path):
            return ssl.create_default_context(capath=path)
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise StudioError(f"{where}: cannot read CA certificates from {path!r}: {exc}") from None


def refresh_answer(response: httpx.Response) -> None:
    """An httpx response hook. The SDK parses the answer to its token refresh (a personal
    access token exchanged for an access token) as JSON whatever its status, so a proxy's
    error page (nginx's 502 while Label Studio restarts) escaped as a JSONDecodeError. Such an
    answer raises :class:`RefreshError` instead, with its status: retried or translated by
    :meth:`StudioClient._call` like any other."""
    if response.status_code == 200 or response.request.method != "POST" \
            or not response.request.url.path.endswith("/" + REFRESH_PATH):
        return
    response.read()
    try:
        response.json()
    except ValueError:
        raise RefreshError(status_code=response.status_code, body=response.text) from None


def certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate check that failed under an httpx error, if that is its cause."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def detail(body: Any) -> str:
    """The reason an error answer gives: its JSON ``detail``, else the body, shortened."""
    if isinstance(body, dict) and body.get("detail"):
        return short(str(body["detail"]))
    return "" if body in (None, "", {}) else short(body)


def sentence(text: str) -> str:
    return text.rstrip(". ") + "."


def refusal(said: str) -> str:
    """A 403's reason, with what to do where Label Studio refuses to call a private address."""
    if "reserved network address" not in said:
        return said or "the token's user lacks permission"
    return (f"{sentence(said)} Label Studio's SSRF protection refuses to call private and "
            f"loopback addresses: allow them on the Label Studio server (ML_BLOCK_LOCAL_IP=false "
            f"for ML backends, SSRF_PROTECTION_ENABLED=false for webhooks, in its environment), "
            f"or set [studio] backend_url to an address it may call")


def short(body: Any, limit: int = 400) -> str:
    """``body`` on one line: JSON as JSON, an HTML error page as its text."""
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    if re.search(r"<(html|body|head|title|h1|center)\b", text, re.IGNORECASE):
        text = re.sub(r"<[^>]*>", " ", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
