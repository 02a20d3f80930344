"""One grouped post for the cases the circuit breaker holds, instead of a card each.

A case the breaker refuses is escalated as any other (``circuit_breaker``: ``status`` shows
it, its Defender alerts are commented on). Its own escalation post is skipped: the
``webhook:escalated`` step journals it as grouped (``grouped: true``) and schedules a
``BreakerPost`` message for the case on the verifications queue, ``wait`` after the hold
(``WorkflowSettings.breaker_post_wait``: the storm's other holds arrive meanwhile).

When a ``BreakerPost`` is delivered, its case is either named in a grouped post already (it
completes, posting nothing) or not: then every held case not yet named (``awaiting_post``) is
read from the journal and named in one post (``PAGE`` cases a post at most), and each case
named journals ``webhook:grouped`` with the post's id. So:

- one post per group, whatever the number of held cases or workers: every ``BreakerPost``
  has the same session id (``BREAKER_SESSION``), which Service Bus (and the local queue) give
  to one receiver at a time, so no two posts are ever made at once, and each reads what the
  one before it journaled;
- none lost: each held case has a message of its own, which names it if no group did (a case
  held after a post goes in the next one; one the journal read missed, in its own);
- a redelivery posts again only if the worker died between the post and its journal lines
  (at least once, as for every webhook post: a webhook cannot be asked what it received).

A post the webhook refuses for good is journaled ``failed`` on every case it named and not
tried again; a transient failure is retried as any message is (``handler``).
"""

import logging
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.errors import PermanentError
from remediation.domain.escalation_kinds import EscalationKind
from remediation.logsafety import redacted_data
from remediation.service.breaker_card import PAGE, HeldCase, Page, breaker_payload
from remediation.service.journaling import CaseRecorder, StepResult
from remediation.service.messages import BREAKER_SESSION, BreakerPost
from remediation.service.ports import EscalationWebhook, MessageRetries, WebhookDelivery
from remediation.service.settings import WorkflowSettings

log = logging.getLogger(__name__)

WEBHOOK_ESCALATED = "webhook:escalated"  # the case's own escalation post (notifications)
GROUPED = "webhook:grouped"  # named in a grouped post (done), or that post refused (failed)
REFUSED = "breaker_post_refused"
# How far back the journal is read for other held cases: a case held now was opened at most
# this long ago, bar approvals held longer (its own message names it all the same).
LOOKBACK = timedelta(days=1)
# A held case is escalated; a person may close it before the grouped post is made (its
# ``BreakerPost`` waits ``breaker_post_wait``): it was held, and is named all the same.
HELD_STATES = frozenset({CaseState.ESCALATED, CaseState.CLOSED})


class BreakerPosts:
    def __init__(self, recorder: CaseRecorder, webhook: EscalationWebhook | None,
                 sends: MessageRetries | None, settings: WorkflowSettings) -> None:
        """``sends``: the verifications queue's scheduled sends (``schedule_copy``; None:
        cases are never grouped here, only posts queued elsewhere are delivered)."""
        self._recorder = recorder
        self._webhook = webhook
        self._sends = sends
        self._settings = settings

    async def join(self, case: Case) -> StepResult:
        """The ``webhook:escalated`` step of a held case: no post of its own; its
        ``BreakerPost`` scheduled ``breaker_post_wait`` after the hold."""
        named = case.done(GROUPED)
        if named is not None:
            return StepResult("held by the circuit breaker: named already in a grouped post "
                              f"({named.detail})", {"grouped": True})
        if self._sends is None:
            raise PermanentError("grouped circuit-breaker posts cannot be queued here")
        now = self._recorder.clock.now()
        due = (case.ended_at or now) + self._settings.breaker_post_wait
        post = BreakerPost(case.case_id, case.user)
        await self._sends.schedule_copy(
            post.to_json().encode(), session_id=BREAKER_SESSION,
            properties={"kind": "breaker_post", "case_id": case.case_id},
            at=due if due > now else None)
        return StepResult("held by the circuit breaker: not posted on its own; one grouped "
                          f"post names every case it holds (due {due:%H:%M:%S} UTC)",
                          {"grouped": True, "due": due.isoformat()})

    async def post(self, message: BreakerPost) -> Case:
        """Name every held case not named yet, unless ``message``'s case was named already.
        Raises TransientError (retried) when the webhook did not take a post."""
        case = await self._recorder.require(message.case_id)
        queued = case.done(WEBHOOK_ESCALATED)
        if case.user != message.user or queued is None or queued.data.get("grouped") is not True:
            return await self._recorder.note(
                case, REFUSED, StepStatus.INFO, "a grouped circuit-breaker post this case "
                "never queued: ignored", {"user": message.user})
        if not awaiting_post(case):
            return case
        if self._webhook is None:  # ESCALATION_WEBHOOK_URL removed since the case was held
            return await self._recorder.note(case, GROUPED, StepStatus.FAILED,
                                             "no escalation webhook is configured any more")
        held = await self._held(case)
        parts = -(-len(held) // PAGE)
        group = secrets.token_hex(4)
        for part in range(parts):
            named = held[part * PAGE:(part + 1) * PAGE]
            await self._post(named, Page(len(held), part + 1, parts), group)
        return await self._recorder.require(case.case_id)

    async def gave_up(self, message: BreakerPost, reason: str) -> None:
        """The message's last attempt failed: its case is journaled as not named. Every
        other held case has its own message."""
        await self._recorder.add_step(message.case_id, Step(
            GROUPED, StepStatus.FAILED, self._recorder.clock.now(), reason))

    async def _held(self, case: Case) -> list[Case]:
        """Every case awaiting a grouped post, ``case`` among them, oldest hold first."""
        now = self._recorder.clock.now()
        since = min(case.created_at, now) - LOOKBACK
        found = [other for other in await self._recorder.journal.list_cases(
            states=HELD_STATES, since=since) if awaiting_post(other)]
        if case.case_id not in {other.case_id for other in found}:
            found.append(case)
        return sorted(found, key=lambda other: (_held_at(other), other.case_id))

    async def _post(self, named: Sequence[Case], page: Page, group: str) -> None:
        assert self._webhook is not None
        held = [HeldCase(case.case_id, case.user, _held_at(case)) for case in named]
        payload = redacted_data(breaker_payload(held, page, self._settings))
        data: dict[str, object] = {"group": group, "held": page.total, "part": page.part,
                                   "parts": page.parts, "format": self._settings.webhook_format}
        try:
            outcome = await self._webhook.post(payload)
        except PermanentError as error:
            log.warning("the grouped circuit-breaker post (%d case(s)) was refused: %s",
                        len(named), error.reason)
            await self._journal(named, StepStatus.FAILED,
                                f"the grouped circuit-breaker post was refused: {error.reason}",
                                data)
            return
        shows = ("" if outcome is not WebhookDelivery.ACCEPTED else
                 "; accepted (202): Teams shows the card only if the flow runs")
        part = f", part {page.part} of {page.parts}" if page.parts > 1 else ""
        await self._journal(named, StepStatus.DONE,
                            f"named in the grouped circuit-breaker post of {page.total} held "
                            f"case(s) (post {group}{part}){shows}",
                            {**data, "outcome": outcome.value})
        log.warning("circuit breaker: one post named %d held case(s) (post %s%s)", len(named),
                    group, part)

    async def _journal(self, named: Sequence[Case], status: StepStatus, detail: str,
                       data: dict[str, object]) -> None:
        at = self._recorder.clock.now()
        for case in named:
            await self._recorder.add_step(case.case_id, Step(GROUPED, status, at, detail,
                                                             dict(data)))


def awaiting_post(case: Case) -> bool:
    """Held by the circuit breaker (escalated ``circuit_breaker``, or closed since by a
    person: it was held all the same), not named in a grouped post yet (nor refused one),
    and not posted on its own (a case held before grouped posts existed had its own). One
    whose notice has not run yet is named all the same: its own message then finds it
    named."""
    if case.state not in HELD_STATES or (
            case.escalation_kind != EscalationKind.CIRCUIT_BREAKER.value):
        return False
    if any(step.name == GROUPED and step.status in (StepStatus.DONE, StepStatus.FAILED)
           for step in case.steps):
        return False
    own = case.done(WEBHOOK_ESCALATED)
    return own is None or own.data.get("grouped") is True


def _held_at(case: Case) -> datetime:
    return case.ended_at or case.updated_at
