"""Detection: Defender alerts and the Restricted users list become remediation requests.

Every signal for one block episode must land in one case. Intake makes that cheap (each
alert id and each block entry enqueues at most once, by a request id derived from it and
looked up in the journal); the workflow's merge makes it certain.

The poll reads alerts page by page as Graph answers: a flood of unrelated alerts costs time,
never memory, and a page that fails keeps the work done on the pages before it (the next
poll's overlapping window reads the rest). The names an alert's evidence gives (mailbox
address, UPN, object id) are resolved through the directory first: one person under two names
is one account, and the alert is handled like any other. An alert whose evidence names several
accounts (or names the directory cannot resolve now) and marks none of them alone as the
compromised one is escalated for a person to choose: its case touches nobody.

One bad item never stops a poll, a sweep or a batch of pushed ids: each is handled on its
own. One the queue refuses outright (too large for Service Bus, say) is journaled as a
``rejected`` case with the reason, so it is never lost and never tried again; any other
failure (the queue busy, the journal unavailable) is reported in the IntakeReport's errors,
and the next poll's overlapping window tries it again.

A source that fails as a whole (the alerts read, the sweep) is never silent: the poll logs a
WARNING naming it and its reason, whoever runs it (the Functions timer, the local runtime,
``run --until-idle``), and the journal keeps each source's last success and last failure
(``service/sources.py``), for ``status`` and ``doctor`` on any worker.
"""

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from remediation.domain.alerts import (
    Alert,
    alert_request_id,
    is_outbound_spam,
    parse_alert,
    request_for_alert,
)
from remediation.domain.blocks import BlockedSender, known_blocks
from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.decisions import owned_by_a_person
from remediation.domain.directory import DirectoryUser
from remediation.domain.errors import InvalidRequest, RemediationError, TransientError
from remediation.domain.escalation_kinds import EscalationKind
from remediation.domain.requests import RemediationRequest, describe, normalise_user
from remediation.domain.sources import Source
from remediation.service import telemetry
from remediation.service.claims import CONFIRMED, one_account
from remediation.service.journaling import CaseRecorder
from remediation.service.ports import (
    AlertSource,
    Clock,
    Directory,
    Journal,
    RequestSender,
    RestrictedSenders,
)
from remediation.service.read_ahead import read_ahead
from remediation.service.sources import record_outcome
from remediation.service.sweeper import Sweeper
from remediation.service.workflow import RemediationWorkflow, new_case_id

log = logging.getLogger(__name__)

# The user of a case opened for an alert whose evidence names several accounts: an address
# in the reserved .invalid domain (RFC 2606), so no request, lookup or merge ever reaches it.
AMBIGUOUS_SENDER = "nobody@ambiguous-evidence.invalid"
MAX_CANDIDATES_SHOWN = 10


@dataclass(frozen=True)
class IntakeSettings:
    titles: tuple[str, ...]
    lookback: timedelta
    sweep: bool = True
    # REMEDIATION_MODE is not dry-run: a block only planned in a dry-run is acted on now.
    acts: bool = True


@dataclass
class IntakeReport:
    """What one poll (or one push) did; every number is something an operator can check."""

    alerts_seen: int = 0
    pages: int = 0
    matched: int = 0
    enqueued: list[str] = field(default_factory=list)
    already_known: int = 0
    rejected: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)  # alerts a person must decide on
    not_confirmed: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)  # hinted ids Graph knows no alert by
    swept: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)  # stuck cases the sweeper resumed
    stalled: list[str] = field(default_factory=list)  # stuck cases it escalated
    errors: list[str] = field(default_factory=list)
    senders: set[str] = field(default_factory=set)
    # A source that could not be read at all (not one bad item of it), with the reason.
    failed_sources: dict[Source, str] = field(default_factory=dict)

    def summary(self) -> str:
        return (f"{self.alerts_seen} alert(s) read, {self.matched} outbound-spam, "
                f"{len(self.enqueued)} queued, {self.already_known} already known, "
                f"{len(self.rejected)} rejected, {len(self.escalated)} escalated (evidence "
                f"naming several accounts), {len(self.swept)} from the Restricted users "
                f"list" + (f", errors: {'; '.join(self.errors)}" if self.errors else ""))


def block_request_id(entry: BlockedSender) -> str:
    """One request per block episode: the sender and when this block was placed."""
    created = entry.created.isoformat() if entry.created else "unknown"
    return "block-" + hashlib.sha256(f"{entry.sender_address}|{created}".encode()).hexdigest()[:32]


def acting_request_id(request_id: str) -> str:
    """The request that acts on a block a dry-run only planned (``block_request_id`` is on
    record already, as the planned case's), once the mode acts."""
    return f"{request_id}-act"


class Intake:
    def __init__(self, *, alerts: AlertSource, exchange: RestrictedSenders, journal: Journal,
                 requests: RequestSender, workflow: RemediationWorkflow, clock: Clock,
                 settings: IntakeSettings, directory: Directory | None = None,
                 sweeper: Sweeper | None = None) -> None:
        """``directory``: resolves the names of evidence naming several accounts;
        ``sweeper``: run at the end of every poll (stuck working cases resumed or
        escalated: ``service.sweeper``)."""
        self._alerts = alerts
        self._directory = directory  # resolves the names of evidence naming several
        self._exchange = exchange
        self._journal = journal
        self._requests = requests
        self._workflow = workflow
        self._clock = clock
        self._settings = settings
        self.sweeper = sweeper

    async def poll(self) -> IntakeReport:
        """Read recent alerts (overlapping window) and sweep the Restricted users list, in a
        span of its own (``remediation poll``, failed naming each source that failed).

        A failure of one source is reported and does not stop the other; the overlap of
        the next poll picks up whatever this one missed.
        """
        with telemetry.current().span(telemetry.POLL, "internal", {}) as span:
            report = await self._poll()
            if report.failed_sources:  # our words only: the reasons stay in the log
                span.failed("source failed: " + ", ".join(
                    source.label for source in report.failed_sources))
            return report

    async def _poll(self) -> IntakeReport:
        report = IntakeReport()
        since = self._clock.now() - self._settings.lookback
        failure: str | None = None
        items_before = len(report.errors)
        try:
            # Page by page as Graph answers: a flood of unrelated alerts costs time, never
            # memory, and a page that fails keeps what the pages before it found. The next
            # page is asked for while this one is handled (one page ahead, no more).
            async for page in read_ahead(self._alerts.recent_alerts(since)):
                report.pages += 1
                for raw in page:
                    try:
                        await self._consider(raw, report)
                    except Exception as error:
                        report.errors.append(f"alert {_label(raw.get('id'))}: {_why(error)}")
        except Exception as error:
            kept = (f" (after {report.pages} page(s): what they held was handled; the next "
                    "poll's overlapping window reads the rest)" if report.pages else "")
            failure = f"{_why(error)}{kept}"
            report.errors.append(f"alerts: {failure}")
        failure = failure or _items_failed(report.errors[items_before:], "alert")
        await self._outcome(Source.ALERTS, failure, report)
        if self._settings.sweep:
            failure = None
            items_before = len(report.errors)
            try:
                await self._sweep(report)
            except Exception as error:
                failure = _why(error)
                report.errors.append(f"Restricted users list: {failure}")
            failure = failure or _items_failed(report.errors[items_before:], "entry")
            await self._outcome(Source.RESTRICTED_USERS, failure, report)
        if self.sweeper is not None:
            swept = await self.sweeper.sweep()
            report.resumed, report.stalled = swept.resumed, swept.escalated
            report.errors += [f"sweeper: {error}" for error in swept.errors]
        for source, reason in report.failed_sources.items():
            log.warning("poll: source %s failed: %s", source.label, reason)
        log.log(logging.WARNING if report.errors else logging.INFO, "poll: %s",
                report.summary())
        return report

    async def _outcome(self, source: Source, failure: str | None,
                       report: IntakeReport) -> None:
        if failure is not None:
            report.failed_sources[source] = failure
        trouble = await record_outcome(self._journal, self._clock, source, failure)
        if trouble is not None:
            report.errors.append(trouble)

    async def accept_hints(self, alert_ids: Iterable[str]) -> IntakeReport:
        """Alert ids pushed to us (HTTP, Event Hub): confirmed against Graph before use.

        Every id is tried. If Graph or the queue failed for some, the first such failure
        (a transient one first) is raised afterwards, so the pusher is asked to try again;
        the ids queued meanwhile are duplicates by then and dropped.
        """
        report = IntakeReport()
        failures: list[RemediationError] = []
        for alert_id in dict.fromkeys(alert_ids):
            try:
                raw = await self._alerts.get_alert(alert_id)
                if raw is None:
                    report.not_confirmed.append(alert_id)
                    report.not_found.append(alert_id)
                    continue
                await self._consider(raw, report, hinted=alert_id)
            except Exception as error:
                report.errors.append(f"alert {_label(alert_id)}: {_why(error)}")
                if isinstance(error, RemediationError):
                    failures.append(error)
        if failures:
            log.warning("pushed alerts: %s", "; ".join(report.errors))
            raise next((f for f in failures if isinstance(f, TransientError)), failures[0])
        return report

    async def _consider(self, raw: dict[str, Any], report: IntakeReport,
                        hinted: str | None = None) -> None:
        report.alerts_seen += 1
        try:
            alert = parse_alert(raw)
        except InvalidRequest as error:
            log.warning("ignoring an alert Graph returned: %s", error.reason)
            report.errors.append(error.reason)
            return
        if not is_outbound_spam(alert, self._settings.titles):
            if hinted is not None:
                report.not_confirmed.append(hinted)
            return
        report.matched += 1
        if await self._journal.case_with_request(alert.request_id) is not None:
            report.already_known += 1
            return
        if alert.status == "resolved":  # somebody closed it already: nothing to do
            if hinted is not None:
                report.not_confirmed.append(hinted)
            return
        if alert.ambiguous:
            account, trouble = await self._one_account(alert)
            if account is None:
                await self._hold_for_a_person(alert, trouble)
                report.escalated.append(alert.id)
                return
            # One person under several names: a normal alert about that account.
            alert = replace(alert, sender=alert.candidates[0], candidates=())
        try:
            request = request_for_alert(alert)
        except InvalidRequest as error:
            await self._reject(alert, error.reason)
            report.rejected.append(alert.id)
            return
        try:
            await self._requests.send(request)
        except ValueError as error:  # refused for good (Service Bus limits): never retried
            await self._reject(alert, f"the requests queue refused it: {error}", request.user)
            report.rejected.append(alert.id)
            return
        report.enqueued.append(request.request_id or "")
        report.senders.add(request.user)

    async def _one_account(self, alert: Alert) -> tuple[DirectoryUser | None, str | None]:
        """The one account the names of an ambiguous alert resolve to through the directory
        (None: several, or unknown), and why it could not be asked, if it could not."""
        if self._directory is None:
            return None, None
        try:
            return await one_account(self._directory, alert), None
        except RemediationError as error:
            return None, error.reason

    async def _hold_for_a_person(self, alert: Alert, trouble: str | None = None) -> None:
        """Evidence naming several accounts, none marked alone as the compromised one: an
        escalated case that touches nobody, its reason naming the candidates (escaped), its
        alert commented on and the escalation posted as for any other. ``trouble``: the
        directory could not say whether the names are one person (the alert is never lost
        for it: a person gets it now)."""
        shown = ", ".join(describe(name) for name in alert.candidates[:MAX_CANDIDATES_SHOWN])
        more = len(alert.candidates) - MAX_CANDIDATES_SHOWN
        kind = ("names" if trouble is not None else "different accounts")
        asked = (f" (the directory could not tell whether they are one person: {trouble})"
                 if trouble is not None else "")
        reason = (f"Defender alert {alert.id} ({' '.join(alert.title.split())}) names "
                  f"{len(alert.candidates)} {kind}{asked} and marks none of them alone "
                  f"as the compromised one: {shown}" + (f" and {more} more" if more > 0 else "")
                  + "; nobody was touched. Choose the account and secure it by hand "
                  "(remediation enqueue --user ADDRESS)")[:1000]
        now = self._clock.now()
        recorder = CaseRecorder(self._journal, self._clock)
        case = await recorder.add_case(Case(
            case_id=new_case_id(now), user=AMBIGUOUS_SENDER, state=CaseState.RECEIVED,
            created_at=now, updated_at=now, source="alert", reason=reason,
            alert_ids=(alert.id,), request_ids=(alert.request_id,)))
        await recorder.add_step(case.case_id, Step(
            "received", StepStatus.INFO, now,
            f"alert {alert.id}: its evidence names {len(alert.candidates)} accounts",
            {"alert_id": alert.id, "candidates": list(alert.candidates),
             **telemetry.trace_data()}))
        # Intake read the alert from Graph: the escalation may comment on it.
        await recorder.add_step(case.case_id, Step(
            CONFIRMED, StepStatus.INFO, now,
            f"alert {alert.id}: found by the alert poll or a push, which read it from Graph",
            {"alert_id": alert.id, "read_back": False}))
        await self._workflow.escalate(case.case_id, reason,
                                      kind=EscalationKind.AMBIGUOUS_ALERT)

    async def _reject(self, alert: Alert, reason: str, user: str = "(no sender)") -> None:
        await self._workflow.reject(
            user, f"{reason} ({alert.title}); read its evidence by hand",
            source="alert", request_id=alert_request_id(alert.id), alert_ids=(alert.id,))

    def _acts_on(self, case: Case) -> bool:
        """Is ``case`` a block a dry-run only planned, now that the mode acts (README,
        Before you switch it on: dry-run, then approve or enforce)?"""
        return self._settings.acts and case.state is CaseState.PLANNED

    async def _sweep(self, report: IntakeReport) -> None:
        for entry in await self._exchange.all_blocked():
            try:
                await self._sweep_entry(entry, report)
            except Exception as error:
                report.errors.append(
                    f"Restricted users list entry {_label(entry.sender_address)}: "
                    f"{_why(error)}")

    async def _sweep_entry(self, entry: BlockedSender, report: IntakeReport) -> None:
        if entry.sender_address in report.senders:
            return  # an alert of this same poll already asked for it
        request_id = block_request_id(entry)
        known = await self._journal.case_with_request(request_id)
        if known is not None:
            if not self._acts_on(known):
                return
            # Planned in a dry-run and the mode acts now: one request to act on the block.
            request_id = acting_request_id(request_id)
            if await self._journal.case_with_request(request_id) is not None:
                return
        latest = await self._journal.latest_case(entry.sender_address)
        if latest is not None and _owns(latest, entry) and not self._acts_on(latest):
            return
        try:
            user = normalise_user(entry.sender_address)
        except InvalidRequest as error:
            report.errors.append(f"Restricted users list entry: {error.reason}")
            return
        created = f"{entry.created:%Y-%m-%d %H:%M} UTC" if entry.created else "unknown"
        try:
            await self._requests.send(RemediationRequest(
                user=user, source="restricted-list", request_id=request_id,
                reason=f"on the Restricted users list since {created} ({entry.reason})"[:1000]))
        except ValueError as error:  # refused for good (Service Bus limits): never retried
            await self._workflow.reject(user, f"the requests queue refused it: {error}",
                                        source="restricted-list", request_id=request_id)
            report.rejected.append(user)
            return
        report.swept.append(user)
        report.senders.add(user)


def _items_failed(errors: list[str], noun: str) -> str | None:
    """A source read whole but with items it could not handle (a queue that refused, a
    journal that failed) is no success either: those blocks wait for the next poll, and the
    operator must see it. None when every item was handled."""
    if not errors:
        return None
    return (f"read, but {len(errors)} {noun}(s) could not be handled (the next poll tries "
            f"again): {errors[0]}")


def _label(value: object) -> str:
    """An alert id or address from outside, printable in a report line."""
    return describe(value, limit=80).strip("'\"")


def _why(error: Exception) -> str:
    if isinstance(error, RemediationError):
        return error.reason
    log.error("intake: unexpected %s", type(error).__name__, exc_info=error)
    return f"unexpected {type(error).__name__}"


def _owns(case: Case, entry: BlockedSender) -> bool:
    """Is ``entry`` a block that ``case`` is handling, has handled, or handed to a human
    (escalated, or closed or rejected by a person)?"""
    if not case.state.is_final:
        return True
    if entry.created is None:
        # A verified case saw every address off the list: a listing since is a new block,
        # even one whose time cannot be read. Any other final case keeps what it cannot date.
        return case.state is not CaseState.VERIFIED
    known = known_blocks(case.block_created, case.last_block_seen)
    if known is not None and entry.created <= known:
        return True
    return owned_by_a_person(case) and entry.created <= case.updated_at
