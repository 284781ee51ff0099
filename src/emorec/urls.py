"""Credentials in URLs: found and masked wherever a URL is printed, logged or stored.

A password can sit in a URL's userinfo (``postgresql://user:PW@host/db``,
``http://user:PW@server``) or, for SQLAlchemy, in its query string
(``...?password=PW``, which psycopg2 takes as a connection argument). ``mask`` hides
both; ``password_in`` tells whether a URL holds one.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query keys that carry a secret for the drivers SQLAlchemy and MLflow pass them to.
SECRET_KEYS = frozenset({"password", "passwd", "pwd", "sslpassword", "token", "secret"})


def password_in(url: str) -> bool:
    """Whether ``url`` holds a password (userinfo or query string)."""
    try:
        parts = urlsplit(url)
        return bool(parts.password) or any(
            k.lower() in SECRET_KEYS for k, _ in parse_qsl(parts.query, keep_blank_values=True)
        )
    except ValueError:  # not a URL at all (a port that is not a number ...)
        return False


def mask(url: str) -> str:
    """``url`` with every password replaced by ``***``; text that is not a URL is returned
    as a placeholder rather than risk printing a secret inside it."""
    if not password_in(url):
        return url
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            host = netloc.rpartition("@")[2]
            netloc = f"{parts.username or ''}:{MASK}@{host}"
        query = urlencode(
            [
                (k, MASK if k.lower() in SECRET_KEYS else v)
                for k, v in parse_qsl(parts.query, keep_blank_values=True)
            ],
            safe="*",
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "<not a URL>"
