"""The EscalationWebhook port: a JSON POST to an incoming webhook (Teams, Slack, a ticket system).

The URL is a secret: Teams and Slack webhook URLs carry their key. It appears in no log line,
exception or repr; messages call it "the escalation webhook". aiohttp's own exceptions name
the URL, so they are never chained or formatted into ours. An answer's body is never quoted
either: it may echo the URL in any encoding (percent-encoded, JSON-escaped, in entities), and
no scrubbing can know them all. A reason gives the status and a fixed description; only a
body that is exactly one of Slack's documented error codes is named.

What an answer proves, by ``ESCALATION_WEBHOOK_FORMAT`` (Slack: "Sending messages using
incoming webhooks", https://api.slack.com/messaging/webhooks; Teams: "Create incoming
webhooks with Workflows for Microsoft Teams", Microsoft Support):

- ``slack``: only ``200`` with the body ``ok`` is ``delivered``; any other 2xx answer (a 200
  with another body, a 202, a 204) is not: PermanentError "answered 200 with an unexpected
  body: <excerpt>", journaled on the case as the step's failure.
- ``teams`` (and a ticket system behind the same format): 202 is only ``accepted``: a Teams
  Workflows trigger answers 202 before its flow runs, and a card the flow cannot show fails
  there, unseen. Another 2xx is ``delivered``, unless its plain-text body says an error: a
  retired Office 365 connector answers 200 with "Microsoft Teams endpoint returned HTTP error
  429" (TransientError for a 429 or 5xx inside, else PermanentError).

Errors are plain-text bodies (Slack's ``invalid_payload``, ``no_text``...): a reason names a
known code, and says only how long any other body was.

No telemetry span records the POST either: with telemetry on, it is sent with OpenTelemetry's
HTTP instrumentation suppressed, so no instrumentation of aiohttp (none is set up today)
could put the URL in a span's ``url.full``.
"""

import asyncio
import logging
import re
from contextlib import AbstractContextManager, nullcontext
from typing import Any
from urllib.parse import urlparse

import aiohttp

from remediation.adapters.retrying import parse_retry_after
from remediation.config import is_loopback
from remediation.domain.errors import PermanentError, TransientError
from remediation.service import telemetry
from remediation.service.ports import WebhookDelivery

log = logging.getLogger(__name__)

NAME = "the escalation webhook"
BODY_LIMIT = 65_536  # read at most this much of an answer
# Slack's documented incoming-webhook errors ("Handling errors", api.slack.com/messaging/
# webhooks): the only bodies a reason names, as they can hold nothing else.
SLACK_ERRORS = frozenset({
    "invalid_payload", "no_text", "user_not_found", "channel_not_found", "channel_is_archived",
    "action_prohibited", "posting_to_general_channel_denied", "too_many_attachments",
    "no_service", "no_service_id", "no_team", "team_disabled", "invalid_token",
})
SLACK_OK = "ok"
# A plain-text 200 that reports a failure (a legacy Teams connector: "Microsoft Teams
# endpoint returned HTTP error 429"): the word "error", and the status it names if any.
_ERROR_BODY = re.compile(r"\berror\b(?:\D{0,20}\b([1-5][0-9][0-9])\b)?", re.IGNORECASE)


def _untraced() -> AbstractContextManager[object]:
    """OpenTelemetry's HTTP instrumentation suppressed, when telemetry is on."""
    if not telemetry.current().enabled:
        return nullcontext()
    from opentelemetry.instrumentation.utils import suppress_http_instrumentation

    return suppress_http_instrumentation()


class JsonWebhook:
    """POSTs each payload as JSON; retries 429/5xx and connection failures in-process."""

    def __init__(self, url: str, *, format: str = "teams", timeout: float = 10.0,
                 attempts: int = 3, retry_delay: float = 1.0,
                 max_retry_after: float = 30.0) -> None:
        """``format``: ESCALATION_WEBHOOK_FORMAT, which decides what an answer proves."""
        _check_url(url)
        self._url = url
        self._format = format
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._attempts = attempts
        self._retry_delay = retry_delay
        self._max_retry_after = max_retry_after
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return "JsonWebhook(<the escalation webhook>)"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, payload: dict[str, Any]) -> WebhookDelivery:
        for attempt in range(1, self._attempts + 1):
            wait = await self._attempt(payload, last=attempt == self._attempts)
            if isinstance(wait, WebhookDelivery):
                return wait
            log.warning("%s: attempt %d of %d failed; retrying in %.1f s", NAME, attempt,
                        self._attempts, wait)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _attempt(self, payload: dict[str, Any], *,
                       last: bool) -> WebhookDelivery | float:
        """Send once: what the answer proves, else how long to wait before the next attempt;
        raise when there is no next attempt."""
        try:
            with _untraced():
                async with self._client().post(self._url, json=payload,
                                               allow_redirects=False) as response:
                    status = response.status
                    retry_after = response.headers.get("Retry-After")
                    body = _decoded(await response.content.read(BODY_LIMIT),
                                    response.charset)
        except TimeoutError:
            # The payload may have arrived: leave a repeat to the queue, not a tight loop.
            raise TransientError(f"{NAME} did not answer within "
                                 f"{self._timeout.total:g} s") from None
        except aiohttp.ClientError as error:
            if last:
                raise TransientError(f"{NAME} could not be reached "
                                     f"({type(error).__name__})") from None
            return self._backoff(None)
        if 200 <= status < 300:
            return self._success(status, body)
        if status in (408, 429) or status >= 500:
            return self._retry_or_raise(status, retry_after, last)
        raise PermanentError(f"{NAME} refused the payload: {status} {_described(body)}")

    def _success(self, status: int, body: str) -> WebhookDelivery:
        """What a 2xx answer proves, for this format (see the module's docstring)."""
        if self._format == "slack":
            if status == 200 and body.strip() == SLACK_OK:
                return WebhookDelivery.DELIVERED
            raise PermanentError(self._unexpected(status, body))
        if status == 202:
            return WebhookDelivery.ACCEPTED
        text = body.strip()
        said = None if text.startswith(("{", "[")) else _ERROR_BODY.search(text)
        if said is None:
            return WebhookDelivery.DELIVERED
        inner = int(said.group(1)) if said.group(1) else None
        if inner is not None and (inner in (408, 429) or inner >= 500):
            raise TransientError(self._unexpected(status, body))
        raise PermanentError(self._unexpected(status, body))

    def _unexpected(self, status: int, body: str) -> str:
        return f"{NAME} answered {status} with an unexpected body: {_described(body)}"

    def _retry_or_raise(self, status: int, retry_after: str | None, last: bool) -> float:
        wait = self._backoff(retry_after)
        if last or wait > self._max_retry_after:
            raise TransientError(f"{NAME} answered {status}"
                                 + (f" (Retry-After {retry_after})" if retry_after else ""))
        return wait

    def _backoff(self, retry_after: str | None) -> float:
        seconds = parse_retry_after(retry_after)
        return seconds if seconds is not None else self._retry_delay

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session


def _described(body: str) -> str:
    """A body as a reason may show it: a known Slack error code, else only its size (never its
    text, which may echo the URL in an encoding no scrubbing knows)."""
    text = body.strip()
    if not text:
        return "(empty)"
    if text in SLACK_ERRORS:
        return text
    said = _ERROR_BODY.search(text)
    inner = f", reporting error {said.group(1)}" if said and said.group(1) else ""
    return f"(a {len(body)}-character body{inner}; not quoted: it may echo the webhook's URL)"


def _decoded(raw: bytes, charset: str | None) -> str:
    try:
        return raw.decode(charset or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        return raw.decode("utf-8", "replace")


def _check_url(url: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme == "https" and parsed.hostname:
        return
    if parsed.scheme == "http" and is_loopback(parsed.hostname or ""):
        return
    raise ValueError(f"{NAME} needs an https URL (plain http only on loopback)")
