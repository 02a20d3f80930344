"""Telling people: comments and status on the Defender alerts of a case, and the escalation
webhook (Teams / Slack, see ``escalations``; a person's decisions and "approval needed",
``decision_notices``). Each runs from its own queue message, so a failure here is retried on
its own and never holds up securing the account.
"""

import logging
from functools import partial
from typing import Any

from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.display import shown
from remediation.domain.durations import format_duration
from remediation.domain.errors import InvalidRequest, PermanentError, TransientError
from remediation.domain.escalation_kinds import EscalationKind
from remediation.logsafety import redact, redacted_data
from remediation.service.admission import ALERT_UPDATE_REFUSED, update_refusal
from remediation.service.breaker_posts import BreakerPosts
from remediation.service.claims import AlertClaims
from remediation.service.decision_notices import decision_comment, notice_payload
from remediation.service.escalations import ACCOUNT_LIMIT, REASON_LIMIT, escalation_payload
from remediation.service.journaling import HYGIENE, CaseRecorder, StepResult
from remediation.service.messages import (
    COMMENTED_PHASES,
    DECIDED_PHASES,
    POSTED_PHASES,
    AlertUpdate,
)
from remediation.service.ports import AlertUpdater, EscalationWebhook, WebhookDelivery
from remediation.service.progress import progress
from remediation.service.settings import WorkflowSettings

log = logging.getLogger(__name__)

MAILBOX_LIMIT = 1000

ALERT_CHANGES: dict[str, dict[str, str]] = {
    "start": {"status": "inProgress"},
    "verified": {"status": "resolved", "classification": "truePositive",
                 "determination": "compromisedAccount"},
    "escalated": {"status": "inProgress"},
}
# The state a phase's notice waits for (queued just before the case was saved in it).
_EXPECTED = {"verified": CaseState.VERIFIED, "escalated": CaseState.ESCALATED,
             "rejected": CaseState.REJECTED, "closed": CaseState.CLOSED}


class Notifications:
    def __init__(self, recorder: CaseRecorder, alerts: AlertUpdater | None,
                 webhook: EscalationWebhook | None, settings: WorkflowSettings,
                 claims: AlertClaims | None = None,
                 breaker_posts: BreakerPosts | None = None) -> None:
        """``breaker_posts``: where a case the circuit breaker held is named instead of
        posting its own escalation (None: each posts its own)."""
        self._recorder = recorder
        self._breaker_posts = breaker_posts
        self._alerts = alerts
        self._webhook = webhook
        self._settings = settings
        self._claims = claims

    async def deliver(self, update: AlertUpdate) -> Case:
        """Comment on and update each alert of the case, and post escalations to the webhook.

        Every comment, status change and post is journaled as done, so a redelivery after a
        transient failure repeats none of them. A permanent failure is journaled and
        skipped: notifications report on the remediation, they never stop it.
        """
        case = await self._recorder.journal.get_case(update.case_id)
        if case is None:
            raise InvalidRequest(f"no case {update.case_id!r} for an alert update")
        refusal = update_refusal(case, update)
        if refusal is not None:
            return await self._recorder.note(case, ALERT_UPDATE_REFUSED, StepStatus.INFO,
                                             refusal, {"phase": update.phase})
        if update.phase == "approval":
            return await self._announce_wait(case)
        expected = _EXPECTED.get(update.phase)
        if expected is not None and told_as(case, update.phase) is None:
            # Queued just before the case was saved final; try again once it is.
            raise TransientError(f"case {case.case_id} is not {expected.value} yet")
        if (self._alerts is not None and self._settings.mode != "dry-run"
                and update.phase in COMMENTED_PHASES):
            if self._claims is not None:  # an id no request could confirm is read back now
                case = await self._claims.settle(case, case.alert_ids)
            # The journal holds redacted text already; redacting again also covers cases
            # journaled before a secret was known (the webhook URL) or by an older version.
            text = redact(alert_comment(told_as(case, update.phase) or case, update.phase,
                                        self._settings))
            for alert_id in case.alert_ids:
                name = f"alert_comment:{update.phase}:{alert_id}"
                # An earlier attempt that started but never heard back may have posted it.
                unsure = any(step.name == name and step.status is StepStatus.STARTED
                             for step in case.steps)
                case = await self._step(case, name,
                                        partial(self._comment, alert_id, text, unsure))
                changes = ALERT_CHANGES.get(update.phase)
                if changes is None or case.state is CaseState.CLOSED:
                    # A person's decision, or an escalation a person has handled since: a
                    # comment, never a verdict nor "in progress" again on their alert.
                    continue
                case = await self._step(case, f"alert_status:{update.phase}:{alert_id}",
                                        partial(self._update, alert_id, changes))
        if update.phase in POSTED_PHASES and self._webhook is not None:
            # One the circuit breaker held is named in one grouped post (breaker_posts).
            post = (partial(self._breaker_posts.join, case)
                    if update.phase == "escalated" and self._breaker_posts is not None
                    and case.escalation_kind == EscalationKind.CIRCUIT_BREAKER.value
                    else partial(self._post, told_as(case, update.phase) or case,
                                 update.phase))
            case = await self._step(case, f"webhook:{update.phase}", post)
        return case

    async def _announce_wait(self, case: Case) -> Case:
        """Post "approval needed" with the exact commands, once per case (``webhook:
        approval`` journaled done), while the case still waits; a case that moved on before
        the notice came is not announced (noted, never retried)."""
        if self._webhook is None:
            return case
        if case.state is not CaseState.AWAITING_APPROVAL:
            if case.done("webhook:approval") is None:
                case = await self._recorder.note(
                    case, "approval_notice_skipped", StepStatus.INFO,
                    f"approval notice not posted: the case is {case.state.value} already")
            return case
        return await self._step(case, "webhook:approval", partial(self._post, case, "approval"))

    async def gave_up(self, update: AlertUpdate, reason: str) -> None:
        await self._recorder.add_step(update.case_id, Step(
            f"alerts:{update.phase}", StepStatus.FAILED, self._recorder.clock.now(), reason))

    async def _step(self, case: Case, name: str, action: Any) -> Case:
        try:
            case, _ = await self._recorder.run(case, name, action)
        except PermanentError as error:
            log.warning("case %s: %s failed: %s", case.case_id, name, error.reason)
            case = await self._recorder.require(case.case_id)
        return case

    async def _comment(self, alert_id: str, text: str, unsure: bool) -> StepResult:
        """Post the comment once: a POST that timed out may have been stored, and Graph
        keeps every comment sent, so a retry first looks for it."""
        assert self._alerts is not None
        if unsure and text in await self._alerts.comment_texts(alert_id):
            return StepResult(f"comment already on alert {alert_id} (an earlier attempt "
                              "posted it)")
        await self._alerts.comment(alert_id, text)
        return StepResult(f"commented on alert {alert_id}")

    async def _update(self, alert_id: str, changes: dict[str, str]) -> StepResult:
        assert self._alerts is not None
        await self._alerts.update(alert_id, changes)
        return StepResult(f"alert {alert_id} set to " + ", ".join(
            f"{key}={value}" for key, value in changes.items()))

    async def _post(self, case: Case, phase: str = "escalated") -> StepResult:
        """Post the notice of ``phase`` and journal what the answer proves
        (``WebhookDelivery``)."""
        assert self._webhook is not None
        payload = (escalation_payload(case, self._settings) if phase == "escalated"
                   else notice_payload(case, phase, self._settings))
        outcome = await self._webhook.post(redacted_data(payload))
        data = {"outcome": outcome.value, "format": self._settings.webhook_format}
        what = {"escalated": "escalation", "approval": "approval notice"}.get(
            phase, f"{phase} notice")
        if outcome is WebhookDelivery.ACCEPTED:
            shows = ("Teams shows the card only if the flow runs"
                     if self._settings.webhook_format == "teams" else "not yet shown")
            return StepResult(f"{what} accepted by the webhook (202): {shows}", data)
        return StepResult(f"{what} delivered to the webhook", data)


def told_as(case: Case, phase: str) -> Case | None:
    """``case`` as the notice of ``phase`` tells it, or None while the case has not reached
    that phase yet (the notice is queued just before the case is saved in it). A case a
    person closed since it escalated is told as it stood when it escalated (the reason its
    ``escalated`` step journaled): ``closed`` comes after ``escalated``, and an escalation
    notice still queued then (Graph failing, a pause) is delivered, never retried until it
    is given up."""
    expected = _EXPECTED.get(phase)
    if expected is None or case.state is expected:
        return case
    if phase != "escalated" or case.state is not CaseState.CLOSED:
        return None
    escalated = next((step for step in reversed(case.steps) if step.name == "escalated"),
                     None)
    return case.evolve(state=CaseState.ESCALATED,
                       reason=escalated.detail if escalated is not None else case.reason)


def alert_comment(case: Case, phase: str, settings: WorkflowSettings) -> str:
    if phase in DECIDED_PHASES:
        return decision_comment(case, phase)
    prefix = f"Automated remediation, case {case.case_id} ({shown(case.user, ACCOUNT_LIMIT)}):"
    mailbox = _mailbox_note(case)
    if phase == "start":
        delays = ", ".join(f"+{format_duration(d)}" for d in settings.verify_delays)
        return (f"{prefix} resetting the password (change forced at next sign-in), revoking "
                "sign-in sessions, checking inbox rules and forwarding, then removing the "
                f"block from the Restricted users list. The block will be re-checked at "
                f"{delays}.")
    if phase == "verified":
        return (f"{prefix} done. Password reset, sessions revoked, block removed, and the "
                "sender is no longer on the Restricted users list. Resolved as a true "
                "positive (compromised account). Ask the user to choose a new password "
                f"after verifying their identity.{mailbox}")
    reason = shown(case.reason or "escalated", REASON_LIMIT).rstrip(".")
    done, not_done = progress(case)
    did = f" Done: {'; '.join(done) if done else 'nothing'}."
    did_not = f" Not done: {'; '.join(not_done)}." if not_done else ""
    return f"{prefix} needs a human. {reason}.{did}{did_not}{mailbox}"


def _mailbox_note(case: Case) -> str:
    hygiene = case.done(HYGIENE)
    if hygiene is None or not hygiene.data.get("findings"):
        return ""
    return f" Mailbox: {shown(hygiene.detail, MAILBOX_LIMIT)}."
