"""The outside world as the workflow sees it. Adapters implement these; tests fake them."""

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, Protocol

from remediation.domain.blocks import BlockedSender
from remediation.domain.cases import Case, CaseState, Step
from remediation.domain.delegates import Delegate
from remediation.domain.directory import DirectoryUser
from remediation.domain.guardrails import Memberships, TenantDomains
from remediation.domain.hygiene import MailboxForwarding
from remediation.domain.pause import Paused
from remediation.domain.requests import RemediationRequest
from remediation.domain.sources import SourceHealth
from remediation.service.messages import AlertUpdate, Approval, VerificationCheck


class Directory(Protocol):
    """Microsoft Entra ID (Graph)."""

    async def find_user(self, user: str) -> DirectoryUser:
        """Raise PermanentError when no such user exists."""
        ...

    async def reset_password(self, user_id: str, password: str) -> None:
        """Set a new password that must be changed at next sign-in."""
        ...

    async def revoke_sessions(self, user_id: str) -> None: ...

    async def disable_sign_in(self, user_id: str) -> None:
        """Block the account's sign-in (``accountEnabled`` false): the containment
        Microsoft's runbook names for an attacker who is still active."""
        ...

    async def memberships(self, user_id: str,
                          protected_group_ids: frozenset[str] = frozenset()) -> Memberships:
        """Transitive group memberships and directory roles, and every other way (ownership,
        PIM for Groups, nesting) the account reaches one of ``protected_group_ids``."""
        ...

    async def tenant_domains(self) -> TenantDomains: ...


class Mailbox(Protocol):
    """Inbox rules (Graph) and mailbox forwarding (Exchange)."""

    async def inbox_rules(self, user_id: str) -> list[dict[str, Any]]: ...

    async def folder_names(self, user_id: str) -> dict[str, str]:
        """Mail folder id -> display name, to show where a rule moves mail."""
        ...

    async def well_known_folders(self, user_id: str) -> dict[str, str]:
        """Folder id -> well-known name (inbox, archive, ...) of those the mailbox has: which
        folder a rule moves mail to, whatever the mailbox's language."""
        ...

    async def disable_rule(self, user_id: str, rule_id: str) -> None: ...

    async def forwarding(self, address: str) -> MailboxForwarding: ...

    async def clear_forwarding(self, address: str) -> None: ...


class MailboxDelegation(Protocol):
    """What kind of mailbox an account has, and who else can use it (Exchange)."""

    async def recipient_type(self, address: str) -> str | None:
        """Get-Mailbox's RecipientTypeDetails (``UserMailbox``, ``SharedMailbox``, ...);
        None when the account has no mailbox."""
        ...

    async def mailbox_delegates(self, address: str) -> list[Delegate]:
        """Every principal holding FullAccess, SendAs or SendOnBehalf on the mailbox
        (``domain.delegates.delegates_from``); raises PermanentError for no such mailbox."""
        ...


class WebhookDelivery(StrEnum):
    """What a webhook's answer proves: ``delivered`` (200/204: the receiver
    took it, Slack answers ``200 ok``) or only ``accepted`` (202: a Teams Workflows trigger
    answers before its flow runs, so the card may still never be shown)."""

    DELIVERED = "delivered"
    ACCEPTED = "accepted"


class EscalationWebhook(Protocol):
    async def post(self, payload: dict[str, Any]) -> WebhookDelivery:
        """POST ``payload`` as JSON; TransientError to try later, PermanentError if refused."""
        ...


class RestrictedSenders(Protocol):
    """Exchange Online's Restricted users list."""

    async def blocked_entries(self, sender: str) -> list[BlockedSender]:
        """The sender's entries; [] when it is not listed (Exchange's "not found")."""
        ...

    async def all_blocked(self) -> list[BlockedSender]:
        """Every entry of the list, every page."""
        ...

    async def unblock(self, sender: str) -> None:
        """Remove the block (the address alone: the cmdlet takes no free-text reason).
        Raises PermanentError when Exchange refused and the sender is still listed."""
        ...


class AlertSource(Protocol):
    """Defender alerts (Graph alerts_v2), as the JSON objects Graph returns."""

    def recent_alerts(self, since: datetime) -> AsyncIterator[list[dict[str, Any]]]:
        """Office 365 alerts updated since ``since``, one page at a time as they arrive (an
        async iterator of pages). It raises TransientError / PermanentError when a page
        cannot be read; the pages yielded before that stay good."""
        ...

    async def get_alert(self, alert_id: str) -> dict[str, Any] | None: ...


class AlertUpdater(Protocol):
    async def comment(self, alert_id: str, text: str) -> None: ...

    async def comment_texts(self, alert_id: str) -> list[str]:
        """The text of every comment on the alert (to never post one twice)."""
        ...

    async def update(self, alert_id: str, changes: dict[str, str]) -> None:
        """PATCH ``status`` / ``classification`` / ``determination``."""
        ...


class RequestSender(Protocol):
    """The requests queue (Service Bus in Azure, SQLite locally)."""

    async def send(self, request: RemediationRequest) -> str: ...

    async def send_approval(self, approval: Approval) -> None: ...


class AlertNotifier(Protocol):
    """Queues an alert update, so a failing Graph call never holds up the remediation."""

    async def notify(self, update: AlertUpdate) -> None: ...


class VerificationScheduler(Protocol):
    """Delayed delivery of verification checks (Service Bus scheduled messages)."""

    async def schedule(self, check: VerificationCheck, at: datetime) -> int:
        """Return a sequence number that ``cancel`` accepts."""
        ...

    async def cancel(self, sequence_number: int) -> None: ...


class MessageRetries(Protocol):
    """One queue's delayed retries (Service Bus ``schedule_messages``): Service Bus offers an
    abandoned message again at once, so a retry later is a copy of the delivered message,
    scheduled for ``at`` under a new message id (a reused one is dropped as a duplicate)."""

    async def schedule_copy(self, body: bytes, *, session_id: str | None,
                            properties: Mapping[str, str | int | float | bool],
                            at: datetime | None) -> str:
        """Schedule the copy for ``at`` (None: deliverable at once, with no scheduled
        enqueue time, so no sender's clock decides when); return its message id."""
        ...


class Journal(Protocol):
    """Cases and their steps. ``update_case`` refuses stale versions (ConcurrentUpdate)."""

    async def add_case(self, case: Case) -> None: ...

    async def update_case(self, case: Case) -> Case:
        """Store ``case`` if its version is current; return it with the next version (and
        the record's new seal and the chain's head naming it, written with the record in one
        atomic write: ``domain.journal_head.record_written``)."""
        ...

    async def add_step(self, case_id: str, step: Step) -> None:
        """Append ``step`` as the case's next link of its hash chain (``domain.journal_chain``:
        its number, the previous step's hash, its own, and the chain's head, in one atomic
        write): concurrent writers never break the chain."""
        ...

    async def add_steps(self, case_id: str, steps: Sequence[Step]) -> None:
        """Append ``steps`` (one or more), in order, as ``add_step`` would one by one, in one
        atomic write: all of them are journaled or none."""
        ...

    async def get_case(self, case_id: str) -> Case | None:
        """The case with its steps in order, each with its chain link as written (none for
        a step written before the chain), the chain's head and the record's seal."""
        ...

    async def case_with_request(self, request_id: str) -> Case | None:
        """The case that a request (alert, sweep entry, manual request) was recorded in."""
        ...

    async def latest_case(self, user: str) -> Case | None:
        """The newest case of ``user`` but a request refused at the door (``rejected``
        with no ``decided_by``); a case a person rejected counts."""
        ...

    async def current_episode(self, user_id: str) -> str | None:
        """The case holding the current block episode of the directory object ``user_id``."""
        ...

    async def claim_episode(self, user_id: str, case_id: str, replaces: str | None) -> str:
        """Atomically make ``case_id`` the current episode of the directory object ``user_id``
        if the episode is still ``replaces`` (None: the object has none yet) or is ``case_id``
        already: of the workers claiming over one ``replaces``, exactly one wins. Return the
        case that holds the episode afterwards (``case_id`` when this claim won)."""
        ...

    async def claim_step(self, case_id: str, step: str, holder: str, now: datetime,
                         lease: timedelta) -> bool:
        """Take ``step`` of the case for ``holder`` until ``now + lease``, unless another
        holder's lease on it is still running: the first writer wins, across every worker."""
        ...

    async def release_step(self, case_id: str, step: str, holder: str) -> None:
        """Give ``step`` up if ``holder`` still has it (its attempt ended cleanly)."""
        ...

    async def list_cases(self, user: str | None = None, *,
                         states: Collection[CaseState] | None = None,
                         since: datetime | None = None,
                         limit: int | None = None) -> list[Case]:
        """The cases of ``user`` (everyone's when None) in one of ``states`` (any when None)
        created at or after ``since``: newest first by ``created_at`` (two created in the
        same millisecond in an order of the journal's choosing), at most ``limit`` (all when
        None). Memory stays bounded by ``limit``, however many cases the journal holds."""
        ...

    async def working_cases(self) -> list[Case]:
        """Every case in a working state (``case_states.WORKING``), newest first, read
        through an index of them: the cost follows the working cases, not the history."""
        ...

    async def count_cases(self, user: str | None = None, *,
                          since: datetime | None = None) -> dict[CaseState, int]:
        """How many cases of ``user`` created at or after ``since`` are in each state (states
        with none are left out)."""
        ...

    async def users_known_as(self, name: str) -> frozenset[str]:
        """The ``user`` of every case whose account goes by ``name`` (lower case): any name
        in its ``known_as``, the address a request named, the primary address, the object id,
        a listed address, the UPN or an SMTP alias."""
        ...

    async def reserve_reset(self, case_id: str, now: datetime, limit: int,
                            window: timedelta) -> bool:
        """Atomically count the resets of the last ``window`` across every worker; take a
        place for ``case_id`` if fewer than ``limit`` (a case that has one keeps it)."""
        ...

    async def pause(self, paused: Paused) -> Paused:
        """Turn the kill switch on for every worker, unless it is on already; return the
        pause in force (an earlier one keeps its who, why and since). Atomic across workers,
        like ``reserve_reset``, and stored next to it."""
        ...

    async def resume(self, by: str, at: datetime) -> Paused | None:
        """Turn the kill switch off; return the pause it lifted (None: it was off, and
        nothing changed). Who lifted it and when are kept with it."""
        ...

    async def pause_state(self) -> Paused | None:
        """The pause in force, or None: one small read, made at the start of every
        delivery (never cached)."""
        ...

    async def record_source(self, source: str, at: datetime, failure: str | None = None) -> None:
        """Keep how reading ``source`` went at ``at``: a success, or a failure with its reason
        (``failure``). Each kind keeps its newest outcome, whichever worker writes last
        (``SourceHealth.with_outcome``)."""
        ...

    async def source_health(self) -> list[SourceHealth]:
        """Every source on record, in no particular order."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class FollowUps(VerificationScheduler, AlertNotifier, Protocol):
    """The verifications queue: scheduled checks and alert updates."""


class TraceSpan(Protocol):
    """One span as the core sees it: attributes are strings of our own vocabulary (ids,
    states, kinds, step names), never text from outside (``service/telemetry.py``)."""

    def set_attributes(self, attributes: Mapping[str, str]) -> None: ...

    def failed(self, description: str) -> None:
        """Mark the span's status an error; ``description``: an error code or a class name,
        never a reason."""
        ...


class Telemetry(Protocol):
    """Traces and metrics (OpenTelemetry: ``adapters/telemetry.py``). The core reports
    through ``service.telemetry``, which names every span, attribute and instrument."""

    @property
    def enabled(self) -> bool:
        """False for the default that reports nothing (then nothing is computed for it)."""
        ...

    def span(self, name: str, kind: Literal["consumer", "internal"],
             attributes: Mapping[str, str], carrier: Mapping[str, Any] | None = None,
             ) -> AbstractContextManager[TraceSpan]:
        """A span, current while the block runs. ``carrier``: a received message's
        application properties; its W3C ``traceparent`` / ``tracestate`` make the span a child
        of the context that sent it (none, or an invalid one: the current context)."""
        ...

    def add(self, counter: str, attributes: Mapping[str, str]) -> None:
        """Add 1 to a counter of ``service.telemetry.COUNTERS``."""
        ...

    def record(self, histogram: str, value: float, attributes: Mapping[str, str]) -> None:
        """Record ``value`` in a histogram of ``service.telemetry.HISTOGRAMS``."""
        ...

    def carrier(self) -> dict[str, str]:
        """The current trace context as message application properties (``traceparent``,
        ``tracestate`` when not empty; W3C Trace Context), {} when there is none."""
        ...
