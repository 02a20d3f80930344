"""Error bodies in the two shapes the real services use: Graph and Exchange admin REST."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from remediation.sandbox.clock import graph_timestamp


def is_exchange_path(path: str) -> bool:
    return path.startswith("/adminapi/")


def graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                ) -> web.Response:
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "request-id": str(uuid.uuid4()),
                "date": graph_timestamp(datetime.now(UTC)),
            },
        }
    }
    return web.json_response(body, status=status, headers=headers)


def exchange_error(status: int, code: str, message: str, exception_type: str = "",
                   headers: dict[str, str] | None = None, *,
                   inner_key: str = "internalException", cause_in: str = "both",
                   ) -> web.Response:
    """An InvokeCommand error as Exchange writes it (as CIPP and M365Permissions see it): a
    generic top-level
    message, and the real text, prefixed with the .NET exception type, in ``details`` and/or
    ``innererror`` (``cause_in``: ``both``, ``details`` or ``innererror``)."""
    detail = f"|{exception_type}|{message}" if exception_type else message
    error: dict[str, Any] = {
        "code": code,
        "message": "An error has occurred." if status >= 500 else "Error executing cmdlet",
    }
    if cause_in in ("both", "details"):
        error["details"] = [{"code": "Context", "target": "", "message": detail}]
    if cause_in in ("both", "innererror"):
        error["innererror"] = {"message": "Error executing cmdlet", "type": "System.Exception",
                               inner_key: {"message": detail, "type": exception_type}}
    return web.json_response({"error": error}, status=status, headers=headers)


def raw_response(status: int, body: str | None, headers: dict[str, str] | None = None,
                 content_type: str = "text/html") -> web.Response:
    """An answer whose body is not JSON, or absent (``None`` or ``""``)."""
    if not body:
        return web.Response(status=status, headers=headers)
    return web.Response(status=status, text=body, content_type=content_type, headers=headers)


def error_for_path(path: str, status: int, code: str, message: str,
                   headers: dict[str, str] | None = None, exception_type: str = "",
                   cause_in: str = "both", inner_key: str = "internalException",
                   ) -> web.Response:
    if is_exchange_path(path):
        return exchange_error(status, code, message, exception_type, headers,
                              inner_key=inner_key, cause_in=cause_in)
    return graph_error(status, code, message, headers=headers)
