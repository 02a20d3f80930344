"""What handlers share: the tenant on the app, and each request's parsed body and subject."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from remediation.sandbox.state import SandboxTenant

TENANT = web.AppKey("tenant", SandboxTenant)
CONTROL_PREFIX = "/_sandbox/"


@dataclass(frozen=True)
class Call:
    """A Graph or Exchange request as the sandbox sees it, parsed once on arrival."""

    body: Any
    cmdlet: str | None
    target: str | None


CALL = web.RequestKey("call", Call)


def describe(path: str, raw: bytes, address_of: Callable[[str], str]) -> Call:
    """Parse a request; `address_of` turns a user's id into the address the log names it by."""
    body = parse_body(raw)
    cmdlet, parameters = cmdlet_input(body)
    if cmdlet is not None:
        users, objects = parameters.get("UserIds"), parameters.get("ObjectIds")
        subject = (parameters.get("SenderAddress") or parameters.get("Mailbox")
                   or parameters.get("Identity")
                   or (users[0] if isinstance(users, list) and users else None)
                   or _known_object(objects, address_of))
        target = str(subject).lower() if subject else None
    else:
        target = graph_user_segment(path)
    return Call(body, cmdlet, address_of(target) if target else None)


def _known_object(objects: object, address_of: Callable[[str], str]) -> str | None:
    """Of a search's ObjectIds, the first naming a user (by id or address), else the first."""
    if not isinstance(objects, list) or not objects:
        return None
    named = [str(item) for item in objects if "@" in address_of(str(item).lower())]
    return named[0] if named else str(objects[0])


def parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def cmdlet_input(body: Any) -> tuple[str | None, dict[str, Any]]:
    """CmdletName and Parameters of an InvokeCommand body, or (None, {}) if it is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("CmdletInput"), dict):
        return None, {}
    cmdlet_input = body["CmdletInput"]
    name = cmdlet_input.get("CmdletName")
    parameters = cmdlet_input.get("Parameters") or {}
    if not isinstance(name, str) or not isinstance(parameters, dict):
        return None, {}
    return name, parameters


def graph_user_segment(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) >= 4 and parts[1] == "v1.0" and parts[2] == "users" and parts[3]:
        return user_key(parts[3])
    return None


def user_key(segment: str) -> str:
    """A user segment (already percent-decoded once by the server, as Graph decodes it) as
    the lookup key. Never decoded again: ``%41`` in a UPN is three characters, and a client
    that encodes twice must get a 404, as from Graph."""
    return segment.lower()
