"""Request signers: turn (method, path, parameters, credentials, time) into the bytes sent.

A venue's authentication scheme is a pluggable part of its profile (``VenueProfile.signer``
names one of ``SIGNERS``), so the REST client has no venue-specific code paths. Each signer
signs exactly the text it puts on the wire: the string that is hashed is the string that is
sent, byte for byte, so percent-encoding can never make the venue compute a different MAC.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Protocol, Sequence
from urllib.parse import quote

# Methods whose parameters travel in the form body; GET and DELETE carry them in the query
# string (the venue's general rules allow either for write methods; a body on DELETE is
# dropped by some proxies, so the query string is the safe place for it).
_BODY_METHODS = frozenset({"POST", "PUT"})


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What goes on the wire: the query string (no ``?``), the body and the headers."""

    method: str
    path: str
    query: str
    body: bytes | None
    headers: dict[str, str] = field(default_factory=dict)


class Signer(Protocol):
    name: str

    def prepare(self, method: str, path: str, params: Sequence[tuple[str, str]], *,
                api_key: str | None, api_secret: str | None, api_key_header: str,
                timestamp_ms: int, recv_window_ms: int, signed: bool) -> SignedRequest:
        """Encode ``params`` for ``method`` and, when ``signed``, authenticate the request."""


def hmac_sha256_hex(secret: str, payload: str) -> str:
    """Hex HMAC-SHA256 of ``payload`` (UTF-8) under ``secret`` (UTF-8)."""
    return hmac.new(secret.encode("utf-8"), payload.encode("utf-8"), hashlib.sha256).hexdigest()


def encode_params(params: Sequence[tuple[str, str]]) -> str:
    """``k=v&k=v`` with every reserved character percent-encoded (space -> %20, + -> %2B).

    Spaces become ``%20`` rather than ``+`` so that a form decoder and a plain URL decoder read
    the same value back; a literal ``+`` becomes ``%2B`` so nobody reads it as a space.
    """
    return "&".join(f"{quote(str(k), safe='')}={quote(str(v), safe='')}" for k, v in params)


class HashKeySigner:
    """HashKey: HMAC-SHA256 hex over the exact parameter string sent, ``signature`` appended.

    The signed text is the query string, or the form body, or the query string immediately
    followed by the body (no separator) when both are used. We never split parameters across
    both, so it is always exactly one of them.
    """

    name = "hashkey"

    def prepare(self, method: str, path: str, params: Sequence[tuple[str, str]], *,
                api_key: str | None, api_secret: str | None, api_key_header: str,
                timestamp_ms: int, recv_window_ms: int, signed: bool) -> SignedRequest:
        method = method.upper()
        items = list(params)
        headers: dict[str, str] = {}
        if signed:
            if not api_key or not api_secret:
                raise ValueError("a signed request needs an API key and secret")
            items += [("recvWindow", str(recv_window_ms)), ("timestamp", str(timestamp_ms))]
            headers[api_key_header] = api_key
        text = encode_params(items)
        if signed:
            signature = hmac_sha256_hex(api_secret or "", text)
            text = f"{text}&signature={signature}"
        if method in _BODY_METHODS:
            headers["Content-Type"] = "application/x-www-form-urlencoded;charset=UTF-8"
            return SignedRequest(method, path, "", text.encode("utf-8"), headers)
        return SignedRequest(method, path, text, None, headers)


def sign_hashkey(secret: str, query: str = "", body: str = "") -> str:
    """The HashKey signature of a request sending ``query`` and/or ``body`` (as sent)."""
    return hmac_sha256_hex(secret, query + body)


class HaqqexSigner:
    """Haqqex: hex HMAC-SHA256 of ``timestamp + "." + JSON body`` in ``x-api-*`` headers.

    The body is compact JSON (what JavaScript's ``JSON.stringify`` produces); a GET sends its
    parameters in the query string and signs the empty object ``{}`` as its body.
    """

    name = "haqqex"

    def prepare(self, method: str, path: str, params: Sequence[tuple[str, str]], *,
                api_key: str | None, api_secret: str | None, api_key_header: str,
                timestamp_ms: int, recv_window_ms: int, signed: bool) -> SignedRequest:
        method = method.upper()
        items = list(params)
        headers = {"Content-Type": "application/json"}
        if method in _BODY_METHODS:
            body_text = json.dumps(dict(items), separators=(",", ":"))
            query = ""
        else:
            body_text = "{}"
            query = encode_params(items)
        if signed:
            if not api_key or not api_secret:
                raise ValueError("a signed request needs an API key and secret")
            stamp = str(timestamp_ms)
            headers["x-api-key"] = api_key
            headers["x-api-timestamp"] = stamp
            headers["x-api-sign"] = sign_haqqex(api_secret, stamp, body_text)
        body = body_text.encode("utf-8") if method in _BODY_METHODS else None
        return SignedRequest(method, path, query, body, headers)


def sign_haqqex(secret: str, timestamp: str, body_json: str) -> str:
    """The Haqqex signature: hex HMAC-SHA256 of ``timestamp.body``."""
    return hmac_sha256_hex(secret, f"{timestamp}.{body_json}")


SIGNERS: dict[str, Signer] = {"hashkey": HashKeySigner(), "haqqex": HaqqexSigner()}


def get_signer(name: str) -> Signer:
    try:
        return SIGNERS[name]
    except KeyError:
        raise ValueError(f"unknown signer {name!r}; known: {', '.join(sorted(SIGNERS))}") from None
