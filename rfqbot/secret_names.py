"""The one definition of "this key names a secret", for log redaction and config checks.

Exact names and suffixes, not substrings: a substring rule masks ``listen_key_failures`` (a
count) or ``design`` (ends in "sign") and hides the very numbers an operator needs. Keys are
compared in one spelling (snake case, lower case) so ``listenKey``, ``listen-key``,
``X-HK-APIKEY`` and ``LISTEN_KEY`` all meet the same rule.
"""

from __future__ import annotations

import re

# Whole keys that hold a secret (after normalise_key).
SECRET_KEY_NAMES = frozenset({
    "signature", "sign", "api_key", "apikey", "api_secret", "apisecret", "secret", "secret_key",
    "password", "passwd", "passphrase", "token", "access_token", "refresh_token", "private_key",
    "access_key", "authorization", "listen_key", "listenkey",
    "x_hk_apikey", "x_apikey", "x_api_key", "x_api_sign",
})
# Endings that make a compound key a secret: ``webhook_token``, ``desk_b_api_secret``.
SECRET_KEY_SUFFIXES = ("_api_key", "_apikey", "_api_secret", "_secret", "_secret_key", "_password",
                       "_passphrase", "_token", "_signature", "_private_key", "_access_key",
                       "_listen_key")

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def normalise_key(key: str) -> str:
    """``listenKey`` / ``listen-key`` / ``LISTEN_KEY`` -> ``listen_key``."""
    return _CAMEL_BOUNDARY.sub("_", key.strip()).replace("-", "_").lower()


def is_secret_key(key: str) -> bool:
    """True when a value under ``key`` is a secret (an API key, a signature, a listen key...).

    Names *of* secrets (``api_key_env``, ``api_key_header``, ``key_hint``) are not secrets:
    they end in something else, so they stay visible.
    """
    name = normalise_key(key)
    return name in SECRET_KEY_NAMES or name.endswith(SECRET_KEY_SUFFIXES)
