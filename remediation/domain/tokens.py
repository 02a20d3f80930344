"""What an access token says about the app holding it, read for the preflight only.

Microsoft identity platform access tokens are JWTs (``header.payload.signature``, each part
base64url-encoded). For an app token (client credentials, managed identity) the claims that
matter here are (access token claims reference,
https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference):

- ``roles``: the application permissions the app was granted on the token's resource;
- ``wids``: the tenant-wide directory roles, as role template ids; "claims are present only
  if a value exists to fill it", and applications "should not take hard dependency on claims
  being present", so a missing ``wids`` means "not said", never "none";
- ``scp``: delegated scopes, only in a token acting for a user (then ``roles`` are that
  user's app roles, not the app's permissions);
- ``tid``: the tenant; ``oid``: the service principal's object id.

The signature is not checked: the service that receives the token does that. Only the
payload is decoded; the token itself is never kept, logged or shown.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TokenClaims:
    """The claims of a JWT access token that say what its holder may do."""

    roles: frozenset[str]
    wids: frozenset[str] | None  # None: the token has no ``wids`` claim
    delegated: bool  # a ``scp`` claim: the token acts for a signed-in user
    tenant_id: str | None
    object_id: str | None


def read_claims(token: str) -> TokenClaims | None:
    """The claims of ``token``, or None when it is not a JWT (an opaque token)."""
    payload = _jwt_payload(token)
    if payload is None:
        return None
    return TokenClaims(
        roles=frozenset(_strings(payload.get("roles"))),
        wids=(frozenset(wid.lower() for wid in _strings(payload["wids"]))
              if "wids" in payload else None),
        delegated=bool(payload.get("scp")),
        tenant_id=_text(payload.get("tid")),
        object_id=_text(payload.get("oid")))


def _jwt_payload(token: str) -> dict[str, Any] | None:
    parts = token.strip().split(".")
    if len(parts) != 3:  # a JWS in compact form; an encrypted JWE has five parts
        return None
    header, payload = (_decode(part) for part in parts[:2])
    if not isinstance(header, dict) or not isinstance(payload, dict):
        return None
    return payload


def _decode(part: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError):  # not base64url, not UTF-8, or not JSON
        return None


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and value else None
