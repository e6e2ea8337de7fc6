"""What each delivery carries beside its body, as GitHub's webhooks do: an HMAC-SHA256 signature of the
body with its owner's secret, the delivery's id (the same on every try), the time of this try,
and what happened.

A receiver computes HMAC-SHA256 over the raw body, keyed with the secret `tao notify secret`
prints (its UTF-8 bytes), and compares `sha256=<hex>` with X-Tao-Signature-256 in constant time.
The body holds the delivery id too, so a replayed request is told apart by the id it repeats.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from tao_server import __version__

SIGNATURE = "X-Tao-Signature-256"
DELIVERY = "X-Tao-Delivery"
TIMESTAMP = "X-Tao-Timestamp"
EVENT = "X-Tao-Event"


def new_secret() -> str:
    """A user's signing secret: 32 random bytes, as 64 hex digits."""
    return secrets.token_hex(32)


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex>`: the HMAC-SHA256 of `body`, keyed with the secret's UTF-8 bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers(secret: str, body: bytes, delivery: str, event: str, sent_at: float) -> dict[str, str]:
    """The headers of one try of a delivery."""
    return {
        "Content-Type": "application/json",
        "User-Agent": f"tao-launcher/{__version__}",
        EVENT: event,
        DELIVERY: delivery,
        TIMESTAMP: str(int(sent_at)),
        SIGNATURE: signature(secret, body),
    }
