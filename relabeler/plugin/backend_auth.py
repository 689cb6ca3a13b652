"""The backend's credentials: the basic-auth pair Label Studio sends with every request but
/health, and the webhook secret it sends as a header; both checked before either is used."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass

from relabeler.errors import ConfigError

BACKEND_USER = "relabeler"


@dataclass(frozen=True)
class BasicAuth:
    """The user and password every request to the backend but /health must carry."""

    username: str
    password: str

    def __repr__(self) -> str:  # the password never reaches a log line
        return f"BasicAuth(username={self.username!r})"

    @classmethod
    def generate(cls) -> BasicAuth:
        return cls(BACKEND_USER, secrets.token_urlsafe(24))

    @classmethod
    def from_env(cls, name: str) -> BasicAuth | None:
        """``user:password`` from $``name``; None when it is unset or empty."""
        value = os.environ.get(name, "")
        if not value:
            return None
        username, colon, password = value.partition(":")
        if not (colon and username and password):
            raise ConfigError(f"${name} must hold `user:password`, both non-empty")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ConfigError(f"${name}: Label Studio sends basic-auth credentials as latin-1, "
                              f"so characters outside it (such as {_outside_latin1(value)!r}) "
                              f"can never match; choose other credentials") from None
        return cls(username, password)

    def header(self) -> str:
        """The ``Authorization`` header value that carries these credentials."""
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def accepts(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries these credentials; both parts are
        compared in constant time."""
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):  # ValueError: a non-ASCII header
            return False
        username, _, password = decoded.partition(b":")
        # Label Studio's HTTP client (requests) sends latin-1, the standard says UTF-8: either
        return any(secrets.compare_digest(username, self.username.encode(encoding))
                   & secrets.compare_digest(password, self.password.encode(encoding))
                   for encoding in _ENCODINGS if self._encodable(encoding))

    def _encodable(self, encoding: str) -> bool:
        try:
            f"{self.username}:{self.password}".encode(encoding)
        except UnicodeEncodeError:
            return False
        return True


def check_secret(secret: str, name: str) -> None:
    """ConfigError unless the webhook secret from $``name`` is visible ASCII (``!`` to ``~``):
    Label Studio sends it as an HTTP header, which cannot carry other characters and loses
    surrounding spaces, so any other secret would never match and every event be lost."""
    bad = next((c for c in secret if not "!" <= c <= "~"), None)
    if bad is not None:
        raise ConfigError(f"${name}: the webhook secret must be visible ASCII characters only "
                          f"(letters, digits, punctuation), not {bad!r}: Label Studio sends it "
                          f"as an HTTP header, which cannot carry that, so no webhook would "
                          f"ever match")


def _outside_latin1(text: str) -> str:
    return next(c for c in text if ord(c) > 0xFF)


#: How a basic-auth pair may be encoded: UTF-8 (RFC 7617's charset) or latin-1 (requests).
_ENCODINGS = ("utf-8", "latin-1")
