"""In-memory fakes of the workflow's ports (remediation/service/ports.py).

They behave like the adapters they stand in for, closely enough that the workflow cannot
tell the difference: the journal serialises what it stores and refuses stale versions, the
restricted list keeps dated entries and can keep a removed block visible for a while, the
scheduler drops a duplicate message id. Each fake records what it was asked to do, so tests
assert on calls, never on mocks.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from remediation.domain.blocks import BlockedSender
from remediation.domain.case_states import WORKING, check_opening, check_transition
from remediation.domain.cases import Case, CaseState, Step
from remediation.domain.directory import DirectoryUser
from remediation.domain.errors import ConcurrentUpdate, PermanentError, RemediationError
from remediation.domain.guardrails import Memberships, TenantDomains
from remediation.domain.hygiene import MailboxForwarding
from remediation.domain.journal_head import (
    Found,
    case_opened,
    continuing,
    record_written,
    step_written,
)
from remediation.domain.journal_links import CaseSeal, ChainHead, StepLink
from remediation.domain.pause import KillSwitch, Paused
from remediation.domain.requests import RemediationRequest
from remediation.domain.sources import SourceHealth
from remediation.service.messages import AlertUpdate, Approval, VerificationCheck
from remediation.service.ports import WebhookDelivery

START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime = START) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when

    def advance(self, delta: timedelta | None = None, **units: float) -> datetime:
        """Move forward by ``delta`` or by keyword units (``hours=1``); return the new time."""
        self._now += (delta or timedelta()) + timedelta(**units)
        return self._now


@dataclass(frozen=True)
class Call:
    """One call a fake received: the operation, its main argument, and when (fake time)."""

    operation: str
    target: str
    at: datetime


@dataclass
class _Failure:
    error: RemediationError
    remaining: int | None  # None: every time


class _Failures:
    """Errors to raise for chosen (operation, key) pairs, forever or a number of times."""

    def __init__(self) -> None:
        self._planned: dict[tuple[str, str], _Failure] = {}

    def plan(self, operation: str, key: str, error: RemediationError,
             times: int | None) -> None:
        self._planned[(operation, key.lower())] = _Failure(error, times)

    def check(self, operation: str, keys: tuple[str, ...]) -> None:
        for key in keys:
            failure = self._planned.get((operation, key.lower()))
            if failure is None or failure.remaining == 0:
                continue
            if failure.remaining is not None:
                failure.remaining -= 1
            raise failure.error


class FakeDirectory:
    """Entra ID: users by address or object id; password resets and revocations recorded.

    ``passwords`` keeps every password the workflow sent, so tests can prove none of them
    reached the journal or the logs.
    """

    def __init__(self, clock: FakeClock | None = None, *, latency: timedelta = timedelta(0),
                 events: list[str] | None = None) -> None:
        self._clock = clock or FakeClock()
        self._latency = latency
        self._users: dict[str, DirectoryUser] = {}
        self._failures = _Failures()
        self.calls: list[Call] = []
        self.passwords: list[str] = []
        self.events = events if events is not None else []
        self._memberships: dict[str, Memberships] = {}
        self.domains = TenantDomains(names=frozenset({"contoso.com"}))

    def add_user(self, upn: str, *, mail: str | None = None, user_id: str | None = None,
                 on_premises_sync_enabled: bool | None = None) -> DirectoryUser:
        user_id = user_id or f"00000000-0000-4000-8000-{len(self._users) + 1:012x}"
        user = DirectoryUser(id=user_id, user_principal_name=upn, mail=mail or upn,
                             display_name=upn.split("@")[0].title(),
                             on_premises_sync_enabled=on_premises_sync_enabled)
        self._users[user_id] = user
        return user

    def fail(self, user: str, error: RemediationError, *, on: str,
             times: int | None = None) -> None:
        """Raise ``error`` when operation ``on`` is called for ``user`` (address or id)."""
        assert on in ("find_user", "reset_password", "revoke_sessions"), on
        self._failures.plan(on, user, error, times)

    def count(self, operation: str) -> int:
        return sum(1 for call in self.calls if call.operation == operation)

    def put_user(self, user: DirectoryUser) -> DirectoryUser:
        """Add (or replace) a user with every field chosen: guests, disabled accounts."""
        self._users[user.id] = user
        return user

    def set_memberships(self, user: str, *, group_ids: Iterable[str] = (),
                        roles: Iterable[str] = ()) -> None:
        """Groups and role names of ``user`` (address or id; it must exist)."""
        found = self._resolve(user)
        assert found is not None, user
        self._memberships[found.id] = Memberships(frozenset(group_ids), tuple(roles))

    def set_domains(self, names: Iterable[str], federated: Iterable[str] = ()) -> None:
        """The tenant's domains (default: contoso.com, managed)."""
        federated = frozenset(d.lower() for d in federated)
        self.domains = TenantDomains(frozenset(d.lower() for d in names) | federated, federated)

    def fail_lookup(self, error: RemediationError, *, on: str, user: str = "",
                    times: int | None = None) -> None:
        """Raise ``error`` from ``memberships`` (for ``user``, or anyone when not given) or
        ``tenant_domains``."""
        assert on in ("memberships", "tenant_domains"), on
        self._failures.plan(on, user, error, times)

    async def memberships(self, user_id: str,
                          protected_group_ids: frozenset[str] = frozenset()) -> Memberships:
        """Recorded in ``calls`` (not ``events``, whose exact order older tests assert)."""
        user = self._resolve(user_id)
        self.calls.append(Call("memberships", user_id, self._clock.now()))
        keys = (user_id, "") if user is None else (user_id, user.id, user.user_principal_name, "")
        self._failures.check("memberships", keys)
        if user is None:
            raise PermanentError(f"no user with id {user_id}")
        return self._memberships.get(user.id, Memberships())

    async def tenant_domains(self) -> TenantDomains:
        self.calls.append(Call("tenant_domains", "", self._clock.now()))
        self._failures.check("tenant_domains", ("",))
        return self.domains

    async def find_user(self, user: str) -> DirectoryUser:
        found = self._resolve(user)
        self._record("find_user", user, found)
        if found is None:
            raise PermanentError(f"user {user} not found in the directory")
        return found

    async def reset_password(self, user_id: str, password: str) -> None:
        self.passwords.append(password)
        self._record("reset_password", user_id, self._resolve(user_id))

    async def revoke_sessions(self, user_id: str) -> None:
        self._record("revoke_sessions", user_id, self._resolve(user_id))

    async def disable_sign_in(self, user_id: str) -> None:
        self._record("disable_sign_in", user_id, self._resolve(user_id))

    def _resolve(self, key: str) -> DirectoryUser | None:
        """By object id, UPN, mail or SMTP alias, as GraphDirectory.find_user finds them."""
        for user in self._users.values():
            if user.owns(key):
                return user
        return None

    def _record(self, operation: str, target: str, user: DirectoryUser | None) -> None:
        self._clock.advance(self._latency)
        self.calls.append(Call(operation, target, self._clock.now()))
        self.events.append(operation)
        keys = (target,) if user is None else (
            target, user.id, user.user_principal_name, user.mail or "")
        self._failures.check(operation, keys)
        if user is None and operation != "find_user":
            raise PermanentError(f"no user with id {target}")


@dataclass(frozen=True)
class Unblock:
    sender: str
    at: datetime


class FakeRestrictedSenders:
    """Exchange's Restricted users list: dated entries per sender.

    ``unblocks`` records every attempt, including ones told to fail.
    ``linger(sender, delta)`` makes the next unblock take ``delta`` (fake time) to show,
    as Exchange does (documented up to 24 hours); until then the removed entry is still
    listed. ``block`` after an unblock is a re-block: a new entry with a later ``created``.
    """

    def __init__(self, clock: FakeClock, *, events: list[str] | None = None) -> None:
        self._clock = clock
        self._entries: dict[str, list[BlockedSender]] = {}
        self._lingering: dict[str, tuple[list[BlockedSender], datetime]] = {}
        self._linger_for: dict[str, timedelta] = {}
        self._failures = _Failures()
        self.unblocks: list[Unblock] = []
        self.lookups: list[Call] = []
        self.events = events if events is not None else []

    def block(self, sender: str, *, created: datetime | None = None,
              reason: str = "Outbound spam") -> BlockedSender:
        entry = BlockedSender(sender_address=sender.lower(), reason=reason,
                              created=created or self._clock.now())
        self._entries.setdefault(sender.lower(), []).append(entry)
        return entry

    def remove(self, sender: str) -> None:
        """Someone else (an admin, Exchange itself) lifted the block."""
        self._entries.pop(sender.lower(), None)

    def linger(self, sender: str, delta: timedelta) -> None:
        self._linger_for[sender.lower()] = delta

    def fail(self, sender: str, error: RemediationError, *, on: str,
             times: int | None = None) -> None:
        assert on in ("blocked_entries", "unblock"), on
        self._failures.plan(on, sender, error, times)

    def listed(self, sender: str) -> list[BlockedSender]:
        """What the list shows now, without recording a lookup."""
        sender = sender.lower()
        visible = list(self._entries.get(sender, []))
        lingering = self._lingering.get(sender)
        if lingering is not None:
            entries, until = lingering
            if self._clock.now() < until:
                visible = entries + visible
            else:
                del self._lingering[sender]
        return visible

    async def all_blocked(self) -> list[BlockedSender]:
        return [entry for sender in sorted({*self._entries, *self._lingering})
                for entry in self.listed(sender)]

    async def blocked_entries(self, sender: str) -> list[BlockedSender]:
        self.lookups.append(Call("blocked_entries", sender, self._clock.now()))
        self.events.append("blocked_entries")
        self._failures.check("blocked_entries", (sender,))
        return self.listed(sender)

    async def unblock(self, sender: str) -> None:
        """Record the attempt, then (unless told to fail) remove the sender's entries."""
        self.events.append("unblock")
        self.unblocks.append(Unblock(sender.lower(), self._clock.now()))
        self._failures.check("unblock", (sender,))
        sender = sender.lower()
        removed = self._entries.pop(sender, [])
        delay = self._linger_for.pop(sender, None)
        if removed and delay:
            self._lingering[sender] = (removed, self._clock.now() + delay)


@dataclass(frozen=True)
class Scheduled:
    check: VerificationCheck
    at: datetime
    sequence_number: int


class FakeScheduler:
    """Scheduled verification messages; a repeated message id returns the first number."""

    def __init__(self, *, events: list[str] | None = None) -> None:
        self.scheduled: list[Scheduled] = []
        self.cancelled: list[int] = []
        self.events = events if events is not None else []
        self._delivered: set[int] = set()

    async def schedule(self, check: VerificationCheck, at: datetime) -> int:
        self.events.append("schedule")
        for earlier in self.scheduled:
            if earlier.check.message_id == check.message_id:
                return earlier.sequence_number
        entry = Scheduled(check, at, 1000 + len(self.scheduled))
        self.scheduled.append(entry)
        return entry.sequence_number

    async def cancel(self, sequence_number: int) -> None:
        if all(s.sequence_number != sequence_number for s in self.scheduled):
            raise PermanentError(f"no scheduled message {sequence_number}")
        self.cancelled.append(sequence_number)

    def pending(self) -> list[Scheduled]:
        """Scheduled, not cancelled and not yet taken by ``due``."""
        return [s for s in self.scheduled if s.sequence_number not in self.cancelled
                and s.sequence_number not in self._delivered]

    def due(self, now: datetime) -> list[VerificationCheck]:
        """Take the pending checks whose time has come, in time order (like the broker)."""
        ready = sorted((s for s in self.pending() if s.at <= now), key=lambda s: s.at)
        self._delivered.update(s.sequence_number for s in ready)
        return [s.check for s in ready]


class FakeJournal:
    """The case journal in memory, with SqliteJournal's rules.

    Everything stored goes through JSON (so non-serialisable data fails here too), steps
    keep their insertion order and carry the hash chain (head and seal too, as the real
    journals do), and ``update_case`` raises ConcurrentUpdate for a stale version.
    """

    def __init__(self) -> None:
        self._cases: dict[str, str] = {}
        self._steps: dict[str, list[str]] = {}
        self._links: dict[str, list[StepLink | None]] = {}
        self._heads: dict[str, ChainHead] = {}
        self._seals: dict[str, CaseSeal] = {}
        self._order: list[str] = []
        self.reset_places: dict[str, datetime] = {}
        self.episodes: dict[str, str] = {}  # user object id -> case id
        self.step_claims: dict[tuple[str, str], tuple[str, datetime]] = {}
        self.sources: dict[str, str] = {}  # source -> SourceHealth as JSON
        self.kill_switch = json.dumps(KillSwitch().to_dict())
        self.pause_reads = 0  # how many times a worker asked whether it is paused

    async def add_case(self, case: Case) -> None:
        check_opening(case.case_id, case.state)
        if case.case_id in self._cases:
            raise ValueError(f"case {case.case_id} already exists")
        self._cases[case.case_id] = json.dumps(case.to_dict())
        links, self._seals[case.case_id], self._heads[case.case_id] = case_opened(case)
        self._steps[case.case_id] = [json.dumps(step.to_dict()) for step in case.steps]
        self._links[case.case_id] = list(links)
        self._order.append(case.case_id)

    def add_case_before_the_chain(self, case: Case) -> None:
        """Store ``case`` as a version from before the hash chain wrote it: its steps without
        links, no head, no seal; steps added since begin the chain (``GENESIS``)."""
        self._cases[case.case_id] = json.dumps(case.to_dict())
        self._steps[case.case_id] = [json.dumps(step.to_dict()) for step in case.steps]
        self._links[case.case_id] = [None] * len(case.steps)
        self._order.append(case.case_id)

    async def update_case(self, case: Case) -> Case:
        raw = self._cases.get(case.case_id)
        if raw is None or json.loads(raw)["version"] != case.version:
            raise ConcurrentUpdate(f"case {case.case_id} changed since it was read")
        check_transition(case.case_id, CaseState(json.loads(raw)["state"]), case.state)
        stored = case.evolve(version=case.version + 1)
        self._cases[case.case_id] = json.dumps(stored.to_dict())
        seal, head = record_written(stored, self._found(case.case_id))
        self._seals[case.case_id], self._heads[case.case_id] = seal, head
        return stored.evolve(seal=seal, chain_head=head)

    async def working_cases(self) -> list[Case]:
        return await self.list_cases(states=WORKING)

    async def add_step(self, case_id: str, step: Step) -> None:
        if case_id not in self._steps:
            raise KeyError(f"no case {case_id} to add a step to")
        link, self._heads[case_id] = step_written(case_id, step, continuing(
            case_id, self._found(case_id)))
        self._steps[case_id].append(json.dumps(step.to_dict()))
        self._links[case_id].append(link)

    async def add_steps(self, case_id: str, steps: Sequence[Step]) -> None:
        if not steps:
            raise ValueError("no steps to write")
        if case_id not in self._steps:  # all or none
            raise KeyError(f"no case {case_id} to add steps to")
        for step in steps:  # nothing else runs between them: one write
            await self.add_step(case_id, step)

    def _found(self, case_id: str) -> Found:
        links = [link for link in self._links[case_id] if link is not None]
        return Found(self._heads.get(case_id),
                     ChainHead(links[-1].seq, links[-1].hash) if links else None,
                     links[0].prev if links else None, self._seals.get(case_id))

    async def get_case(self, case_id: str) -> Case | None:
        return self._load(case_id) if case_id in self._cases else None

    async def case_with_request(self, request_id: str) -> Case | None:
        cases = [c for c in self._all() if request_id in c.request_ids]
        return cases[0] if cases else None

    async def latest_case(self, user: str) -> Case | None:
        cases = [c for c in self._all() if c.user == user
                 and (c.state is not CaseState.REJECTED or c.decided_by)]
        return cases[-1] if cases else None

    async def current_episode(self, user_id: str) -> str | None:
        return self.episodes.get(user_id)

    async def claim_episode(self, user_id: str, case_id: str, replaces: str | None) -> str:
        """The journals' compare and set: only over the case the claimer saw there."""
        current = self.episodes.get(user_id)
        if current is not None and current not in (replaces, case_id):
            return current
        self.episodes[user_id] = case_id
        return case_id

    async def claim_step(self, case_id: str, step: str, holder: str, now: datetime,
                         lease: timedelta) -> bool:
        held = self.step_claims.get((case_id, step))
        if held is not None and held[0] != holder and held[1] > now:
            return False
        self.step_claims[(case_id, step)] = (holder, now + lease)
        return True

    async def release_step(self, case_id: str, step: str, holder: str) -> None:
        held = self.step_claims.get((case_id, step))
        if held is not None and held[0] == holder:
            del self.step_claims[(case_id, step)]

    async def list_cases(self, user: str | None = None, *,
                         states: Collection[CaseState] | None = None,
                         since: datetime | None = None,
                         limit: int | None = None) -> list[Case]:
        """Newest first; of two created at once, the one stored last first (as SQLite)."""
        matching = [c for c in reversed(self._all()) if _matches(c, user, states, since)]
        return matching if limit is None else matching[:max(0, limit)]

    async def count_cases(self, user: str | None = None, *,
                          since: datetime | None = None) -> dict[CaseState, int]:
        return dict(Counter(c.state for c in self._all() if _matches(c, user, None, since)))

    async def users_known_as(self, name: str) -> frozenset[str]:
        return frozenset(c.user for c in self._all() if name.lower() in c.known_as)

    async def reserve_reset(self, case_id: str, now: datetime, limit: int,
                            window: timedelta) -> bool:
        """The journals' breaker: places taken within ``window`` of ``now`` count."""
        cutoff = now - window
        self.reset_places = {held: at for held, at in self.reset_places.items() if at >= cutoff}
        if case_id in self.reset_places:
            return True
        if len(self.reset_places) >= limit:
            return False
        self.reset_places[case_id] = now
        return True

    async def pause(self, paused: Paused) -> Paused:
        switch = self._switch().pause(paused)
        self.kill_switch = json.dumps(switch.to_dict())
        assert switch.paused is not None
        return switch.paused

    async def resume(self, by: str, at: datetime) -> Paused | None:
        switch = self._switch()
        self.kill_switch = json.dumps(switch.resume(by, at).to_dict())
        return switch.paused

    async def pause_state(self) -> Paused | None:
        self.pause_reads += 1
        return self._switch().paused

    def _switch(self) -> KillSwitch:
        return KillSwitch.from_dict(json.loads(self.kill_switch))

    async def record_source(self, source: str, at: datetime, failure: str | None = None) -> None:
        known = await self._source(source)
        self.sources[source] = json.dumps(known.with_outcome(at, failure).to_dict())

    async def source_health(self) -> list[SourceHealth]:
        return [await self._source(source) for source in self.sources]

    async def _source(self, source: str) -> SourceHealth:
        raw = self.sources.get(source)
        return SourceHealth(source) if raw is None else SourceHealth.from_dict(json.loads(raw))

    def dump(self) -> str:
        """Every stored byte, for asserting that something never reached the journal."""
        return "\n".join([*self._cases.values(), *(s for steps in self._steps.values()
                                                   for s in steps)])

    def _all(self) -> list[Case]:
        indexed = sorted(enumerate(self._order),
                         key=lambda item: (self._load(item[1]).created_at, item[0]))
        return [self._load(case_id) for _, case_id in indexed]

    def _load(self, case_id: str) -> Case:
        steps = tuple(replace(Step.from_dict(json.loads(s)), link=link)
                      for s, link in zip(self._steps[case_id], self._links[case_id],
                                         strict=True))
        return Case.from_dict(json.loads(self._cases[case_id]), steps).evolve(
            chain_head=self._heads.get(case_id), seal=self._seals.get(case_id))


def _matches(case: Case, user: str | None, states: Collection[CaseState] | None,
             since: datetime | None) -> bool:
    return ((user is None or case.user == user) and (states is None or case.state in states)
            and (since is None or case.created_at >= since))


@dataclass
class FakeTenant:
    """All the fakes wired to one clock and one event log, as a test usually wants them."""

    clock: FakeClock = field(default_factory=FakeClock)
    directory_latency: timedelta = timedelta(0)
    events: list[str] = field(default_factory=list)
    directory: FakeDirectory = field(init=False)
    exchange: FakeRestrictedSenders = field(init=False)
    scheduler: FakeScheduler = field(init=False)
    journal: FakeJournal = field(default_factory=FakeJournal)

    def __post_init__(self) -> None:
        self.directory = FakeDirectory(self.clock, latency=self.directory_latency,
                                       events=self.events)
        self.exchange = FakeRestrictedSenders(self.clock, events=self.events)
        self.scheduler = FakeScheduler(events=self.events)


# -- Defender alerts and the queues intake writes to ------------------------------------------


class FakeAlertSource:
    """Graph ``alerts_v2`` as raw JSON dicts (the shapes of the security alert resource).

    ``recent_alerts`` yields, like the adapter's ``lastUpdateDateTime ge`` filter, the alerts
    updated at or after ``since`` (an alert without a parseable timestamp is always returned),
    in pages of ``page_size``. ``fail`` makes the next calls of one operation raise (for
    ``recent_alerts``: when the page after ``after_pages`` pages is read); every call is
    counted.
    """

    def __init__(self, alerts: list[dict[str, Any]] | None = None,
                 page_size: int = 100, stand_in_sender: str | None = None) -> None:
        # For workflow tests that name alert ids without building alerts: any id not added
        # reads back as a "User restricted from sending email" alert naming this sender.
        self.stand_in_sender = stand_in_sender
        # When each stand-in alert was created, as Graph would say (absent: unknown).
        self.stand_in_created: dict[str, datetime | None] = {}
        self.alerts: dict[str, dict[str, Any]] = {}
        self.since: list[datetime] = []
        self.lookups: list[str] = []
        self.page_size = page_size
        self.pages_read = 0
        self._failures: dict[str, tuple[RemediationError, int | None]] = {}
        self._fail_after_pages = 0
        for alert in alerts or []:
            self.add(alert)

    def add(self, alert: dict[str, Any]) -> dict[str, Any]:
        self.alerts[str(alert.get("id"))] = alert
        return alert

    def fail(self, error: RemediationError, *, on: str, times: int | None = None,
             after_pages: int = 0) -> None:
        assert on in ("recent_alerts", "get_alert"), on
        assert after_pages == 0 or on == "recent_alerts", on
        self._failures[on] = (error, times)
        self._fail_after_pages = after_pages

    @property
    def recent_calls(self) -> int:
        return len(self.since)

    @property
    def get_calls(self) -> int:
        return len(self.lookups)

    async def recent_alerts(self, since: datetime) -> AsyncIterator[list[dict[str, Any]]]:
        self.since.append(since)
        found = [alert for alert in self.alerts.values() if _updated_since(alert, since)]
        for number, start in enumerate(range(0, max(len(found), 1), self.page_size)):
            if number >= self._fail_after_pages:
                self._check("recent_alerts")
            self.pages_read += 1
            yield [copy.deepcopy(alert) for alert in found[start:start + self.page_size]]

    async def get_alert(self, alert_id: str) -> dict[str, Any] | None:
        self.lookups.append(alert_id)
        self._check("get_alert")
        alert = self.alerts.get(alert_id)
        if alert is None and self.stand_in_sender is not None:
            return {"id": alert_id, "title": "User restricted from sending email",
                    "serviceSource": "microsoftDefenderForOffice365", "status": "new",
                    "createdDateTime": _graph_time(self.stand_in_created.get(alert_id)),
                    "evidence": [{"@odata.type": "#microsoft.graph.security.mailboxEvidence",
                                  "primaryAddress": self.stand_in_sender}]}
        return copy.deepcopy(alert) if alert is not None else None

    def _check(self, operation: str) -> None:
        planned = self._failures.get(operation)
        if planned is None:
            return
        error, remaining = planned
        if remaining == 0:
            return
        if remaining is not None:
            self._failures[operation] = (error, remaining - 1)
        raise error


def _graph_time(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def _updated_since(alert: dict[str, Any], since: datetime) -> bool:
    stamp = alert.get("lastUpdateDateTime")
    if not isinstance(stamp, str):
        return True
    try:
        updated = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return True
    return updated >= since


@dataclass(frozen=True)
class AlertComment:
    alert_id: str
    text: str


@dataclass(frozen=True)
class AlertChange:
    alert_id: str
    changes: dict[str, str]


class FakeAlertUpdater:
    """Comments and PATCHes on alerts; ``fail(alert_id, error, on=...)`` makes them raise.

    A failed call is recorded in ``attempts`` but not in ``comments`` / ``updates``, which
    hold only what Graph accepted.
    """

    def __init__(self) -> None:
        self.comments: list[AlertComment] = []
        self.updates: list[AlertChange] = []
        self.attempts: list[tuple[str, str]] = []  # (operation, alert id), failed ones too
        self._failures = _Failures()

    def fail(self, alert_id: str, error: RemediationError, *, on: str,
             times: int | None = None) -> None:
        assert on in ("comment", "update"), on
        self._failures.plan(on, alert_id, error, times)

    def comments_on(self, alert_id: str) -> list[str]:
        return [c.text for c in self.comments if c.alert_id == alert_id]

    def updates_of(self, alert_id: str) -> list[dict[str, str]]:
        return [u.changes for u in self.updates if u.alert_id == alert_id]

    async def comment_texts(self, alert_id: str) -> list[str]:
        self.attempts.append(("comment_texts", alert_id))
        return self.comments_on(alert_id)

    async def comment(self, alert_id: str, text: str) -> None:
        self.attempts.append(("comment", alert_id))
        self._failures.check("comment", (alert_id,))
        self.comments.append(AlertComment(alert_id, text))

    async def update(self, alert_id: str, changes: dict[str, str]) -> None:
        self.attempts.append(("update", alert_id))
        self._failures.check("update", (alert_id,))
        self.updates.append(AlertChange(alert_id, dict(changes)))


class FakeRequestSender:
    """The requests queue: records every RemediationRequest sent, in order."""

    def __init__(self) -> None:
        self.sent: list[RemediationRequest] = []
        self.approvals: list[Approval] = []

    async def send(self, request: RemediationRequest) -> str:
        self.sent.append(request)
        return request.request_id or f"message-{len(self.sent)}"

    async def send_approval(self, approval: Approval) -> None:
        self.approvals.append(approval)

    def users(self) -> list[str]:
        return [request.user for request in self.sent]


class FakeAlertNotifier:
    """The alert-update queue: records every AlertUpdate queued, in order.

    ``fail(error, times=n, phase=p)`` makes the next ``n`` sends (of phase ``p``, or of any
    phase) raise and queue nothing; ``failed`` records them.
    """

    def __init__(self) -> None:
        self.updates: list[AlertUpdate] = []
        self.failed: list[AlertUpdate] = []
        self._failure: tuple[RemediationError, int, str | None] | None = None

    def fail(self, error: RemediationError, *, times: int = 1,
             phase: str | None = None) -> None:
        self._failure = (error, times, phase)

    async def notify(self, update: AlertUpdate) -> None:
        if self._failure is not None:
            error, remaining, phase = self._failure
            if remaining > 0 and phase in (None, update.phase):
                self._failure = (error, remaining - 1, phase)
                self.failed.append(update)
                raise error
        self.updates.append(update)

    def phases(self) -> list[tuple[str, int]]:
        return [(update.phase, update.alert_count) for update in self.updates]


# -- alerts_v2 JSON, as Graph returns it (learn.microsoft.com/graph/api/resources/security-alert)

OFFICE_365 = "microsoftDefenderForOffice365"


def mailbox_evidence(primary: str | None, *, upn: str | None = None,
                     account_upn: str | None = None,
                     object_id: str | None = None) -> dict[str, Any]:
    account = None if account_upn is None and object_id is None else {
        "userPrincipalName": account_upn, "azureAdUserId": object_id}
    return {"@odata.type": "#microsoft.graph.security.mailboxEvidence",
            "primaryAddress": primary, "upn": upn, "displayName": "Rob",
            "userAccount": account, "roles": [], "verdict": "suspicious"}


def user_evidence(upn: str | None, object_id: str | None = None) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.security.userEvidence", "roles": ["compromised"],
            "userAccount": {"accountName": None, "domainName": None, "displayName": None,
                            "userPrincipalName": upn, "azureAdUserId": object_id,
                            "userSid": None}}


def alert_json(alert_id: str, evidence: list[dict[str, Any]] | None = None, *,
               title: str = "User restricted from sending email", status: str = "new",
               service_source: str = OFFICE_365,
               updated: datetime | None = None) -> dict[str, Any]:
    stamp = (updated or START).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"id": alert_id, "providerAlertId": alert_id, "incidentId": "41", "status": status,
            "severity": "high", "classification": None, "determination": None,
            "serviceSource": service_source, "detectionSource": service_source,
            "title": title, "description": f"{title}.", "category": "ThreatManagement",
            "assignedTo": None, "createdDateTime": stamp, "lastUpdateDateTime": stamp,
            "resolvedDateTime": None, "comments": [], "evidence": evidence or []}


# -- mailbox hygiene and the escalation webhook -----------------------------------------------


class FakeMailbox:
    """Inbox rules and folders per user id, forwarding per address.

    ``disabled`` records (user id, rule id) and ``cleared`` the addresses whose forwarding was
    removed, both only when the call succeeded; ``fail`` makes an operation raise.
    """

    def __init__(self, *, events: list[str] | None = None) -> None:
        self.rules: dict[str, list[dict[str, Any]]] = {}
        self.folders: dict[str, dict[str, str]] = {}
        self.forwards: dict[str, MailboxForwarding] = {}
        self.disabled: list[tuple[str, str]] = []
        self.cleared: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.events = events if events is not None else []
        self._failures = _Failures()

    def add_rule(self, user_id: str, rule: dict[str, Any]) -> dict[str, Any]:
        self.rules.setdefault(user_id, []).append(copy.deepcopy(rule))
        return rule

    def set_folders(self, user_id: str, folders: dict[str, str]) -> None:
        self.folders[user_id] = dict(folders)

    def set_forwarding(self, address: str, forwarding: MailboxForwarding) -> None:
        self.forwards[address.lower()] = forwarding

    def fail(self, key: str, error: RemediationError, *, on: str,
             times: int | None = None) -> None:
        """``key`` is the user id (rules, folders) or the address (forwarding)."""
        assert on in ("inbox_rules", "folder_names", "disable_rule", "forwarding",
                      "clear_forwarding"), on
        self._failures.plan(on, key, error, times)

    def rule(self, user_id: str, rule_id: str) -> dict[str, Any]:
        return next(r for r in self.rules.get(user_id, []) if r.get("id") == rule_id)

    async def inbox_rules(self, user_id: str) -> list[dict[str, Any]]:
        self._record("inbox_rules", user_id)
        return copy.deepcopy(self.rules.get(user_id, []))

    async def folder_names(self, user_id: str) -> dict[str, str]:
        self._record("folder_names", user_id)
        return dict(self.folders.get(user_id, {}))

    async def well_known_folders(self, user_id: str) -> dict[str, str]:
        """Folder id -> well-known name: the folders set_folders named in English."""
        self._record("well_known_folders", user_id)
        english = {"inbox": "inbox", "archive": "archive", "deleted items": "deleteditems",
                   "junk email": "junkemail", "conversation history": "conversationhistory"}
        return {folder_id: english[name.lower()]
                for folder_id, name in self.folders.get(user_id, {}).items()
                if name.lower() in english}

    async def disable_rule(self, user_id: str, rule_id: str) -> None:
        self._record("disable_rule", user_id)
        try:
            rule = self.rule(user_id, rule_id)
        except StopIteration:
            raise PermanentError(f"no inbox rule {rule_id}") from None
        rule["isEnabled"] = False
        self.disabled.append((user_id, rule_id))

    async def forwarding(self, address: str) -> MailboxForwarding:
        self._record("forwarding", address)
        return self.forwards.get(address.lower(), MailboxForwarding())

    async def clear_forwarding(self, address: str) -> None:
        self._record("clear_forwarding", address)
        self.forwards[address.lower()] = MailboxForwarding()
        self.cleared.append(address.lower())

    def _record(self, operation: str, key: str) -> None:
        self.calls.append((operation, key))
        self.events.append(operation)
        self._failures.check(operation, (key,))


class FakeWebhook:
    """Records every payload it accepted; ``fail(error, times=n)`` makes the next posts raise
    (``attempts`` counts those too)."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.attempts = 0
        self.outcome = WebhookDelivery.DELIVERED  # what each accepted post answers
        self._failure: tuple[RemediationError, int | None] | None = None

    def fail(self, error: RemediationError, *, times: int | None = 1) -> None:
        self._failure = (error, times)

    async def post(self, payload: dict[str, Any]) -> WebhookDelivery:
        self.attempts += 1
        if self._failure is not None:
            error, remaining = self._failure
            if remaining is None or remaining > 0:
                self._failure = (error, None if remaining is None else remaining - 1)
                raise error
        self.payloads.append(json.loads(json.dumps(payload)))
        return self.outcome
