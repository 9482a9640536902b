"""CSRF tokens derived from the user's Airflow JWT, so no state is ever written to Flask's session.

The ``/pluginsv2`` app keeps Flask's cookie session under the name ``session``, the same cookie the FAB auth
manager uses for its own login session: a Flask-WTF token stored there would overwrite the user's FAB session.
Instead the token is an HMAC (SHA-256, keyed with ``[api] secret_key``) of the JWT the request authenticated
with.  A page served to the user embeds it; a forged cross-site request cannot compute it, because the JWT sits
in an HttpOnly cookie and the key never leaves the server.  It changes whenever the JWT does (a new login), so a
form left open across a re-login is refused with a message to reload, never silently accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
_PURPOSE = b"dagnostics-feedback-csrf\x00"


def _key() -> bytes:
    from airflow.configuration import conf

    return conf.get("api", "secret_key").encode()


def csrf_token(jwt: str) -> str:
    digest = hmac.new(_key(), _PURPOSE + jwt.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def is_valid(jwt: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(jwt), presented)
