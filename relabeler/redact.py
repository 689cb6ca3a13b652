"""Keep secrets out of log lines and error messages.

A URL may carry credentials (``http://user:password@host``: the Label Studio URL, the ML
backend's URL); :func:`mask_url` is applied wherever one is logged or put in a message.
"""

from __future__ import annotations

import re

MASK = "***"
#: a URL inside a text, up to the next white space or quote
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")


def mask_url(url: str) -> str:
    """``url`` with the password of its user info replaced by ``***``.

    ``http://user:pass@host:8080/x`` -> ``http://user:***@host:8080/x``; a user name alone
    (often a token: ``https://TOKEN@host``) becomes ``***``. Anything that does not parse is
    handled as text, so a malformed URL is masked too and never raises.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    # the user info ends at the last "@": a password may hold "/", "?", "#" (or "@") unquoted
    at = rest.rfind("@")
    if at < 0:
        return url
    userinfo = rest[:at]
    head = userinfo
    for c in "/?#":
        head = head.split(c, 1)[0]
    # an "@" in the path or query (before it: a host and maybe a port) holds no user info
    if head != userinfo and (":" not in head or head.partition(":")[2].isdigit()):
        return url
    user, colon, _ = userinfo.partition(":")
    masked = f"{user}:{MASK}" if colon else MASK
    return f"{scheme}{sep}{masked}@{rest[at + 1:]}"


def is_masked(url: str) -> bool:
    """Whether ``url`` is what :func:`mask_url` gives for a URL with a password: ``***``
    stands where its password (or its user name alone) was, so it cannot be read with it.
    A ``***`` elsewhere (in a path) does not count."""
    # with the mask swapped for other text, a masked URL has a password again (masking it
    # changes it); a URL whose "***" is not in its user info comes back as it is
    swapped = url.replace(MASK, "x")
    return MASK in url and mask_url(url) == url and mask_url(swapped) != swapped


def mask_text(text: str) -> str:
    """``text`` (a message from a library that names a URL) with every URL in it masked by
    :func:`mask_url`."""
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)
