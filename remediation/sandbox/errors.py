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
                   headers: dict[str, str] | None = None) -> web.Response:
    detail = f"|{exception_type}|{message}" if exception_type else message
    body: dict[str, Any] = {
        "error": {
            "code": code,
            "message": message,
            "details": [{"code": "Context", "target": "", "message": detail}],
            "innererror": {"internalException": {"message": detail}},
        }
    }
    return web.json_response(body, status=status, headers=headers)


def error_for_path(path: str, status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    if is_exchange_path(path):
        return exchange_error(status, code, message, headers=headers)
    return graph_error(status, code, message, headers=headers)
