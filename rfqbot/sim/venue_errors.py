"""The venue's error answers: ``{"code": ..., "msg": ...}`` with the documented code and status.

Codes are sent the way the venue sends them: text with leading zeros (``"0001"``) or negative
numbers (``-1021``). Where the documents give no code for a Market Place situation, the choice
made here is listed in the README (section "The venue simulator") so client authors know it is the simulator's.
"""

from __future__ import annotations

from typing import Any


class VenueReject(Exception):
    """Raised anywhere in the simulator; the REST layer turns it into the HTTP answer."""

    def __init__(self, code: str | int, msg: str, http_status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


def missing(field: str) -> VenueReject:
    return VenueReject("0001", f"Required field {field} missing or invalid")


def bad_signature() -> VenueReject:
    return VenueReject("0001", "Incorrect signature")


def invalid_key() -> VenueReject:
    return VenueReject("0102", "Invalid APIKey")


def stale_timestamp() -> VenueReject:
    return VenueReject(-1021, "Timestamp for this request is outside of the recvWindow")


def illegal(param: str, why: str = "") -> VenueReject:
    return VenueReject(-1130, f"Illegal parameter '{param}'" + (f": {why}" if why else ""))


def unsupported_pair() -> VenueReject:
    return VenueReject(-5031, "Unsupported quote pair")


def precision_illegal() -> VenueReject:
    return VenueReject(-5032, "Precision illegal")


def quote_expired() -> VenueReject:
    return VenueReject(-3003, "quote expired or sellAmount invalid, please check again")


def invalid_order_id(value: str) -> VenueReject:
    return VenueReject(-5027, f"Invalid orderId: {value} provided.")


def unsupported_operation(why: str) -> VenueReject:
    return VenueReject(-1020, f"Unsupported operation: {why}")


def rate_limited() -> VenueReject:
    return VenueReject("0003", "Rate limit exceeded", http_status=429)


def banned() -> VenueReject:
    return VenueReject(-3145, "Please DO NOT submit request too frequently (blocked after 429; "
                       "wait for the penalty minute to pass)", http_status=418)
