"""Which case a request belongs to: its own (redelivered), the one holding the person's
current block episode (merged), or a new one (the person's next episode).

One case per directory object and block episode, however many signals point at it and
however they name the person: the journal holds, per object id, the case of the current
episode, and a new case takes it over only from the case its worker saw there (an atomic
claim), so of two requests racing for one person one opens the case and the other merges.
A new alert created after a case acted (its unblock, or its end) is new evidence: it never
joins a finished case, and it is never answered by work done before it existed.
"""

import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from remediation.concurrently import each
from remediation.domain.blocks import BlockedSender
from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.decisions import owned_by_a_person, refused_by_a_person
from remediation.domain.directory import DirectoryUser
from remediation.domain.errors import ConcurrentUpdate, PermanentError, TransientError
from remediation.domain.escalation_kinds import EscalationKind
from remediation.domain.requests import RemediationRequest
from remediation.service import telemetry
from remediation.service.addresses import account_addresses, entries_for
from remediation.service.journaling import LOOKUP, CaseRecorder, StepResult
from remediation.service.outcomes import Outcomes
from remediation.service.ports import Directory, RestrictedSenders

log = logging.getLogger(__name__)


def new_case_id(now: datetime) -> str:
    return f"{now:%Y%m%d}-{secrets.token_hex(4)}"


def lookup_result(user: DirectoryUser) -> StepResult:
    return StepResult(f"found {user.user_principal_name}", {
        "user_id": user.id, "sender": user.sender_address, "upn": user.user_principal_name,
        "mail": user.mail, "enabled": user.account_enabled,
        "synced": user.on_premises_sync_enabled, "user_type": user.user_type,
        "proxy_addresses": list(user.proxy_addresses), "creation_type": user.creation_type,
        "external_user_state": user.external_user_state})


def user_from_lookup(data: dict[str, Any]) -> DirectoryUser:
    """The user a journaled lookup found (older journals lack the newer fields)."""
    return DirectoryUser(id=data["user_id"], user_principal_name=data["upn"],
                         mail=data.get("mail", data.get("sender")),
                         account_enabled=data.get("enabled", True),
                         on_premises_sync_enabled=data.get("synced"),
                         user_type=data.get("user_type", "Member"),
                         proxy_addresses=tuple(data.get("proxy_addresses") or ()),
                         creation_type=data.get("creation_type"),
                         external_user_state=data.get("external_user_state"))


class Episodes:
    def __init__(self, recorder: CaseRecorder, outcomes: Outcomes, directory: Directory,
                 exchange: RestrictedSenders, merge_window: timedelta) -> None:
        self._recorder = recorder
        self._outcomes = outcomes
        self._directory = directory
        self._exchange = exchange
        self._merge_window = merge_window

    async def case_for(self, request: RemediationRequest) -> tuple[Case, bool]:
        """The case for this request and whether to run it.

        A request the journal knows resumes its case. One naming the holder of a person's
        current episode directly (its address or object id) and settled without asking the
        tenant (a signal about a block still being worked on) merges at once. Any other is
        journaled ``received`` before the tenant is asked anything, so a request that never
        gets further is still on record; then the lookup names the directory object, and the
        episode claim in the journal decides, atomically, whether it opens the person's next
        episode or joins (or is turned away by) the current one.
        """
        assert request.request_id is not None
        # Both reads at once: the holder's is wasted only on a redelivery.
        known, holder = await each(self._recorder.journal.case_with_request(request.request_id),
                                   self._holder_named(request.user))
        if known is not None:
            return await self._resume(known, request)
        if holder is not None and not _starts_over(holder, request):
            placement = await self._placement(holder, request, ask_tenant=False)
            if placement is _Placement.MERGE:
                return await self._merge(holder, request, why=_why_merged(holder, request)), False
            if placement is _Placement.ESCALATE:
                return await self._escalate_with(holder, request), False
        return await self._place(await self.receive(request, looking_up=True), request,
                                 looking_up=True)

    async def reject(self, user: str, reason: str, source: str = "unknown",
                     request_id: str | None = None, alert_ids: tuple[str, ...] = ()) -> Case:
        """Journal an invalid request as a ``rejected`` case so it is never lost silently."""
        now = self._recorder.clock.now()
        case = Case(case_id=new_case_id(now), user=user, state=CaseState.REJECTED,
                    created_at=now, updated_at=now, source=source, reason=reason,
                    alert_ids=alert_ids, request_ids=(request_id,) if request_id else (),
                    steps=(Step("rejected", StepStatus.INFO, now, reason),))
        case = await self._recorder.add_case(case)
        log.warning("rejected request for %s: %s", user, reason)
        return case

    async def given_up(self, request: RemediationRequest, reason: str) -> Case:
        """Journal a request that failed before its case was (the journal failing, a merge
        that never went through) and escalate it: never dropped with only a log line."""
        case = await self.receive(request)
        return await self._outcomes.escalate(case.case_id, reason, kind=EscalationKind.GAVE_UP)

    async def working_case(self, request_id: str) -> Case | None:
        """The case a request works: the one that recorded it, or, when that is the
        request's own case merged into another (named by an alias, its own case lost the
        race), the case it was merged into. What its retries resume, journal on and give up
        on, whatever message carried it."""
        case = await self._recorder.journal.case_with_request(request_id)
        merged_into = None if case is None else _merged_into(case)
        if merged_into is None:
            return case
        return await self._recorder.journal.get_case(merged_into) or case

    async def _resume(self, case: Case, request: RemediationRequest) -> tuple[Case, bool]:
        """A request the journal knows (a redelivery, a retry): it runs the case it works,
        as a request recorded on that case directly does. A manual request merged into a
        case waiting for approval was that case's approval; its retry after a failure takes
        the approved case on from its next step (issue 14, point 1), never stops at its own
        merged record."""
        if case.state is CaseState.RECEIVED and case.user_id is None:
            return await self._place(case, request)  # stopped before it found its episode
        merged_into = _merged_into(case)
        if merged_into is not None:
            return await self._recorder.require(merged_into), True
        return case, True

    async def _holder_named(self, name: str) -> Case | None:
        """The case holding the current episode of the person ``name`` names exactly (the
        primary address a case took, or the object id): journal reads only."""
        journal = self._recorder.journal
        if "@" not in name:
            holder_id = await journal.current_episode(name)
            return None if holder_id is None else await journal.get_case(holder_id)
        latest = await journal.latest_case(name)
        if latest is None or latest.user_id is None:
            return None
        holder_id = await journal.current_episode(latest.user_id)
        return latest if holder_id == latest.case_id else None

    async def receive(self, request: RemediationRequest, *, looking_up: bool = False) -> Case:
        """Journal the request as a new case under the name it gave; nothing asked yet.
        ``looking_up``: the lookup starts next, and its ``started`` is journaled with the
        case, in the same write."""
        assert request.request_id is not None
        now = self._recorder.clock.now()
        detail = f"{request.source} request" + (" (forced)" if request.force else "")
        # The trace it opened in: what a message sent with none joins (service.telemetry).
        received = Step("received", StepStatus.INFO, now, detail,
                        {**request_data(request), **telemetry.trace_data()})
        lookup = (Step(LOOKUP, StepStatus.STARTED, now),) if looking_up else ()
        case = Case(case_id=new_case_id(now), user=request.user, state=CaseState.RECEIVED,
                    created_at=now, updated_at=now, source=request.source,
                    reason=request.reason, requested_by=request.requested_by,
                    alert_ids=request.alert_ids, request_ids=(request.request_id,),
                    force=request.force, listed_addresses=_address_named(request),
                    steps=(received, *lookup))
        return await self._recorder.add_case(case)

    async def _place(self, case: Case, request: RemediationRequest, *,
                     looking_up: bool = False) -> tuple[Case, bool]:
        """Look the person up, then open their next episode with ``case`` or settle it into
        the current one; the claim in the journal makes one of two racing requests win.
        ``looking_up``: the case was opened with its lookup's ``started``."""
        async with self._recorder.holding(case.case_id):  # the lookup's done is this pass's
            return await self._placed(case, request, looking_up=looking_up)

    async def _placed(self, case: Case, request: RemediationRequest, *,
                      looking_up: bool) -> tuple[Case, bool]:
        try:
            # The lookup reads: its ``done`` is written side by side with the reads below.
            case, found = await self._recorder.run(
                case, LOOKUP, lambda: self._lookup(request.user), hold_done=True,
                started=looking_up)
        except PermanentError as error:  # nobody to act on: a human must look
            return await self._outcomes.escalate(case.case_id, error.reason,
                                                 kind=error.kind), False
        user = user_from_lookup(found.data)
        journal = self._recorder.journal
        for _ in range(_CLAIM_ROUNDS):
            # The legacy look at once too: it is wasted only when an episode is claimed.
            _, holder_id, legacy = await each(self._recorder.flush(case.case_id),
                                              journal.current_episode(user.id),
                                              self._legacy_holder(user, case))
            if holder_id == case.case_id:
                break  # claimed by an earlier attempt of this request
            holder = legacy if holder_id is None else await journal.get_case(holder_id)
            placement = (_Placement.NEW if holder is None or _starts_over(holder, request)
                         else await self._placement(holder, request, ask_tenant=True,
                                                    user=user))
            if holder is not None and placement is _Placement.MERGE:
                return await self._settle(case, await self._merge(
                    holder, request, why=_why_merged(holder, request))), False
            if holder is not None and placement is _Placement.ESCALATE:
                return await self._settle(case, await self._escalate_with(holder, request)), False
            if holder is not None and placement is _Placement.REBLOCKED:
                return await self._settle(case, await self._escalate_reblocked(
                    holder, request, user)), False
            if holder is not None and placement is _Placement.HANDED_OVER:
                case = await self._adopt(case, user)
                return await self._outcomes.escalate(
                    case.case_id, _handed_over(holder, request),
                    kind=EscalationKind.NEW_EVIDENCE), False
            if await journal.claim_episode(user.id, case.case_id, holder_id) == case.case_id:
                if holder is not None:
                    case = await self._say_why_new(case, holder, request)
                break
            # Another request for this person claimed the episode first: place it again.
        else:
            raise TransientError(f"the block episode of {user.id} kept changing under "
                                 "concurrent requests; trying again later")
        case = await self._adopt(case, user, working=True)
        log.info("case %s opened for %s (%s)", case.case_id, case.user, request.source)
        return case, True

    async def _say_why_new(self, case: Case, holder: Case,
                           request: RemediationRequest) -> Case:
        """Journal why ``case`` opens the person's next episode after ``holder``: a manual
        ``--force``, evidence Microsoft confirmed, or the tenant showing a block the earlier
        case did not handle; so a second reset always says what allowed it."""
        if request.force:
            why, text = "forced", "a manual request forced it (--force)" + (
                f", requested by {request.requested_by}" if request.requested_by else "")
        elif _changed_nothing(holder):
            why, text = "nothing_done", "that case changed nothing in the tenant"
        elif _is_new_evidence(holder, request):
            why, text = "confirmed_evidence", (
                f"new evidence: {_evidence(holder, request)}, after that case acted at "
                f"{_when(holder.acted_at)}")
        else:
            why, text = "newer_block", (
                "the Restricted users list shows a block that case did not handle")
        return await self._recorder.note(
            case, NEW_EPISODE, StepStatus.INFO,
            f"next episode after case {holder.case_id} ({holder.state.value}): {text}",
            {"why": why, "after_case": holder.case_id})

    async def _lookup(self, name: str) -> StepResult:
        return lookup_result(await self._directory.find_user(name))

    async def _legacy_holder(self, user: DirectoryUser, case: Case) -> Case | None:
        """The account's latest case journaled before episodes were claimed, if any (cases
        of requests still looking for their episode are passed over)."""
        placed = [state for state in CaseState if state is not CaseState.REJECTED]
        for other in await self._recorder.journal.list_cases(
                user.sender_address, states=placed, limit=_LEGACY_LOOK_BACK):
            if other.case_id != case.case_id and other.user_id is not None:
                return other if other.user_id == user.id else None
        return None

    async def _adopt(self, case: Case, user: DirectoryUser, *, working: bool = False) -> Case:
        """The case takes the account it won: its object id and primary address (saved on
        the case as the lookup left it, read again only if another writer came between).
        ``working``: it opened the person's episode, and a ``received`` case is
        ``in_progress`` from here, in the same write."""
        def changes(current: Case) -> dict[str, Any]:
            moved = working and current.state is CaseState.RECEIVED
            return {"user": user.sender_address, "user_id": user.id,
                    "sender": user.sender_address, "aliases": user.aliases,
                    **({"state": CaseState.IN_PROGRESS} if moved else {})}

        if all(getattr(case, name) == value for name, value in changes(case).items()):
            return case
        try:
            return await self._recorder.save(case, **changes(case))
        except ConcurrentUpdate:
            return await self._saved(case.case_id, changes)

    async def _settle(self, case: Case, holder: Case) -> Case:
        """End the request's own case, its request now recorded on ``holder``."""
        case = await self._recorder.note(case, MERGED_INTO, StepStatus.INFO,
                                         f"merged into case {holder.case_id}",
                                         {"case_id": holder.case_id})
        await self._outcomes.end(case, CaseState.SKIPPED, f"merged into case {holder.case_id}")
        return holder

    async def _placement(self, holder: Case, request: RemediationRequest, *,
                         ask_tenant: bool,
                         user: DirectoryUser | None = None) -> "_Placement | None":
        """Where a request about ``holder``'s person goes; None when that needs the
        tenant's answer and ``ask_tenant`` is False.

        A signal about the block a case is still working on merges. A new alert created
        after the case acted (its unblock, or its end) is new evidence: it never joins a
        finished case, and a case that lifted a block and waits for its checks goes to a
        human with it (the earlier work did not answer it). A finished case absorbs what
        carries no new evidence as before: an escalated one for as long as the block it
        was handed stays listed, a verified one for a while unless a newer block shows a
        new episode. A case that lifted its block and waits for its checks never absorbs a
        newer block on any address of the account (``user``, as the lookup found it now):
        that is a re-block, and goes to a human.
        """
        settled = _settled_placement(holder, request)
        if not ask_tenant:
            return settled
        if (settled is _Placement.MERGE and not holder.state.is_final
                and holder.unblocked_at is not None):
            reblocks = await self._reblocks(holder, user)
            return _Placement.REBLOCKED if reblocks else settled
        if settled is not None:
            return settled
        if _unconfirmed_evidence(holder, request):
            # Neither new evidence (nothing confirmed) nor the case's own (it may be newer
            # than its work): ask Graph again later; the last attempt hands it to a person
            # with this reason.
            raise TransientError(_unread_reason(holder, request))
        if _is_new_evidence(holder, request):
            if owned_by_a_person(holder) and await self._human_owns_block(holder, user):
                return _Placement.HANDED_OVER
            return _Placement.NEW
        return _Placement.MERGE if await self._same_episode(holder, user) else _Placement.NEW

    async def _human_owns_block(self, case: Case, user: DirectoryUser | None) -> bool:
        """Is the block an escalated case was handed for still listed (and no newer one)?"""
        entries = await self._entries(case, user)
        known = max(filter(None, (case.last_block_seen, case.block_created)),
                    default=case.updated_at)
        return bool(entries) and not any(entry.is_newer_than(known) for entry in entries)

    async def _reblocks(self, case: Case, user: DirectoryUser | None) -> list[BlockedSender]:
        """Entries on any address of the account placed after the block ``case`` lifted
        (or, failing its time, after the unblock), as verification judges them."""
        known = case.block_created or case.unblocked_at
        return [entry for entry in await self._entries(case, user)
                if entry.is_newer_than(known)]

    async def _entries(self, case: Case, user: DirectoryUser | None) -> list[BlockedSender]:
        """The entries of every address of the account: the case's listed ones and those
        the directory gives ``user`` now (an alias added since counts as much)."""
        return await entries_for(self._exchange, account_addresses(case, user))

    async def _same_episode(self, case: Case, user: DirectoryUser | None) -> bool:
        """Does a request with no new evidence belong to the finished ``case``?

        An escalated case keeps absorbing requests about any block it was handed for as long
        as that block stays listed: the robot never lifts a block a human now owns (``force``
        starts over). A verified case absorbs requests for a while unless a newer block
        shows a new episode.
        """
        recent = self._recent(case)
        entries = await self._entries(case, user)
        if case.state is CaseState.VERIFIED:
            # Verification saw every address off the list: whatever is listed now is a newer
            # block, its time readable or not. Nothing listed and nothing confirmed new: the
            # same episode, however long ago it ended (only --force starts over).
            return not entries
        if owned_by_a_person(case):  # escalated, or closed or rejected by a person
            if not entries:
                return recent
            known = max(filter(None, (case.last_block_seen, case.block_created)),
                        default=case.updated_at)
            return not any(entry.is_newer_than(known) for entry in entries)
        # A case that found nothing to unblock knows no block time: then a block placed after
        # it acted is the newer one.
        known = case.block_created or case.unblocked_at or case.created_at
        return not any(entry.is_newer_than(known) for entry in entries)

    def _recent(self, case: Case) -> bool:
        """Did ``case`` end (or last change) within the merge window?"""
        return self._recorder.clock.now() - (case.ended_at or case.updated_at) <= (
            self._merge_window)

    async def _merge(self, case: Case, request: RemediationRequest, *,
                     why: str | None = None) -> Case:
        """Record the request (and its alerts) on ``case``: no second reset or unblock."""
        request_id = request.request_id
        assert request_id is not None
        decided = _settled_placement(case, request)

        def merged(current: Case) -> dict[str, Any]:
            if _settled_placement(current, request) != decided:  # it acted or ended meanwhile
                raise TransientError(f"case {case.case_id} moved on while this request was "
                                     "being placed; trying again")
            return {"alert_ids": current.alert_ids + _new_alerts(current, request),
                    "request_ids": (*current.request_ids, request_id)}

        if request_id not in case.request_ids:
            case = await self._saved(case.case_id, merged, touch=False)
            detail = (f"{request.source} request merged; {why}" if why else
                      f"duplicate {request.source} request merged; no second reset or unblock")
            if request.requested_by:
                detail += f" (requested by {request.requested_by})"
            case = await self._recorder.note(case, "merged", StepStatus.INFO, detail,
                                             request_data(request))
            log.info("request %s merged into case %s", request_id, case.case_id)
        if request.alert_ids:  # queued once per count of alerts (journaled)
            await self._outcomes.follow_up_merged(case)
        return await self._recorder.require(case.case_id)

    async def _escalate_with(self, case: Case, request: RemediationRequest) -> Case:
        """New evidence after an open case lifted its block: the case goes to a human with
        it first (so no check can verify it in between), then records it."""
        escalated = await self._outcomes.escalate_if_open(
            case.case_id, _new_evidence_reason(case, request), kind=EscalationKind.NEW_EVIDENCE)
        if escalated is None:  # it ended meanwhile: the request is placed again, later
            raise TransientError(f"case {case.case_id} ended while this request was being "
                                 "placed; trying again")
        return await self._merge(escalated, request,
                                 why="new evidence: the case went to a human with it")

    async def _escalate_reblocked(self, case: Case, request: RemediationRequest,
                                  user: DirectoryUser | None) -> Case:
        """A block placed after an open case lifted its block, on any address of the
        account: the case goes to a human with it (as verification would), then records the
        request; never merged as a duplicate, never a second unblock."""
        reblocks = await self._reblocks(case, user)
        created = max((entry.created for entry in reblocks if entry.created), default=None)
        listed = ", ".join(dict.fromkeys(entry.sender_address for entry in reblocks)) or (
            "an address of the account")  # gone again since placement saw it
        escalated = await self._outcomes.escalate_if_open(
            case.case_id, f"re-blocked at {_when(created)} as {listed} after the unblock "
            f"(found by a {request.source} request): the account is probably still sending "
            "spam; investigate before unblocking again", kind=EscalationKind.REBLOCKED)
        if escalated is None:  # it ended meanwhile: the request is placed again, later
            raise TransientError(f"case {case.case_id} ended while this request was being "
                                 "placed; trying again")
        if created is not None:
            escalated = await self._saved(case.case_id, lambda current: {
                "last_block_seen": max(filter(None, (current.last_block_seen, created)))})
        return await self._merge(escalated, request,
                                 why=f"re-blocked as {listed}: the case went to a human with it")

    async def _saved(self, case_id: str, changes: Callable[[Case], dict[str, Any]], *,
                     touch: bool = True) -> Case:
        """Save ``changes`` (worked out from the case as stored) over a concurrent writer:
        a merge and the worker running the case may both be saving it. ``touch``: as
        ``CaseRecorder.save`` (a merge moves nothing)."""
        for attempt in range(_SAVE_ATTEMPTS):
            current = await self._recorder.require(case_id)
            try:
                return await self._recorder.save(current, touch=touch, **changes(current))
            except ConcurrentUpdate:
                if attempt == _SAVE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")


class _Placement(Enum):
    MERGE = "merge"  # the same block: recorded on the case, nothing done twice
    NEW = "new"  # the person's next episode: secured again
    ESCALATE = "escalate"  # new evidence after an open case lifted its block: to a human
    HANDED_OVER = "handed_over"  # new evidence while a human owns the block: to a human
    REBLOCKED = "reblocked"  # a newer block after an open case lifted its block: to a human


MERGED_INTO = "merged_into"  # the step of a request's case that another case took in
NEW_EPISODE = "new_episode"  # the step saying why a case opened the person's next episode
_CLAIM_ROUNDS = 5
_LEGACY_LOOK_BACK = 5
_SAVE_ATTEMPTS = 5


def _settled_placement(case: Case, request: RemediationRequest) -> _Placement | None:
    """Where a request goes when the journal alone can tell (None: the tenant must be asked
    whether a finished case's block is the one this request is about, or Graph again about
    alerts it could not confirm)."""
    if _changed_nothing(case):
        return _Placement.NEW
    if _unconfirmed_evidence(case, request):
        return None  # _placement asks Graph again later, whatever the case's state
    fresh = _is_new_evidence(case, request)
    if not case.state.is_final:
        return _Placement.ESCALATE if fresh else _Placement.MERGE
    if not fresh and _new_alerts(case, request):
        return _Placement.MERGE  # alerts created before the case acted: its own
    return None


def _changed_nothing(case: Case) -> bool:
    """Skipped, planned, or a request refused at the door: the case changed nothing and
    nobody owns a block through it, so a request about its person opens their next episode.
    A case a person rejected changed nothing either, but that person owns its block
    (``owned_by_a_person``): requests about it are recorded on it, as on an escalation."""
    return case.state in (CaseState.SKIPPED, CaseState.PLANNED) or (
        case.state is CaseState.REJECTED and not refused_by_a_person(case))


def _starts_over(holder: Case, request: RemediationRequest) -> bool:
    """Does the request open the person's next episode whatever ``holder`` is doing? A manual
    ``--force`` does, except while ``holder`` waits for approval: nothing was done yet, so
    there is nothing to do again, and the forced request is that case's approval (a second
    case would leave the first waiting, and approving it later would reset again)."""
    return request.force and holder.state is not CaseState.AWAITING_APPROVAL


def _why_merged(holder: Case, request: RemediationRequest) -> str | None:
    """What a merge says when it is not a plain duplicate."""
    if holder.state is CaseState.AWAITING_APPROVAL and request.source == "manual":
        return ("a manual request" + (" (forced)" if request.force else "") +
                " for a case waiting for approval: it is the case's approval")
    return None


def _new_alerts(case: Case, request: RemediationRequest) -> tuple[str, ...]:
    return tuple(alert for alert in request.alert_ids if alert not in case.alert_ids)


def _evidence_alerts(case: Case, request: RemediationRequest) -> tuple[str, ...]:
    """The request's new alerts that are evidence with a known time: those Microsoft
    confirmed (Graph read them back as outbound-spam alerts about the account, dated), or,
    where nobody read them back, all of them at the time the request gives. An id Graph does
    not know is none, and neither is one it could not be asked about (``_unconfirmed``)."""
    alerts = _new_alerts(case, request)
    if request.evidence_ids is None:
        return alerts if request.evidence_at is not None else ()
    return tuple(alert for alert in alerts if alert in request.evidence_ids)


def _unconfirmed(case: Case, request: RemediationRequest) -> tuple[str, ...]:
    """The request's new alerts that could not be confirmed or refused now (a read that
    failed): their time is unknown. Where nobody read them back, those without a time."""
    alerts = _new_alerts(case, request)
    if request.evidence_ids is None:
        return alerts if request.evidence_at is None else ()
    return tuple(alert for alert in alerts if alert in request.unconfirmed_ids)


def _is_new_evidence(case: Case, request: RemediationRequest) -> bool:
    """Does the request bring alerts Microsoft confirmed were created after ``case`` acted?
    Only such evidence escalates a working case, opens the person's next episode or resets
    again (issue 14, point 3): an alert Graph could not be asked about never does."""
    acted = case.acted_at
    if acted is None or request.evidence_at is None or not _evidence_alerts(case, request):
        return False
    return request.evidence_at > acted


def _unconfirmed_evidence(case: Case, request: RemediationRequest) -> bool:
    """Alerts that may be new evidence after ``case`` acted (its unblock, or its end) but
    that Graph could not confirm or date now, and no confirmed evidence that decides
    anyway: whatever the case's state, the request is placed again later (TransientError),
    and a person gets it only when Graph never answers (the handler's last attempt)."""
    return (case.acted_at is not None and bool(_unconfirmed(case, request))
            and not _is_new_evidence(case, request))


def _evidence(case: Case, request: RemediationRequest) -> str:
    alerts = _evidence_alerts(case, request)
    confirmed = "as the request says" if request.evidence_ids is None else "read back from Graph"
    return (f"Defender alert{'s' if len(alerts) > 1 else ''} {', '.join(alerts)} "
            f"({confirmed}) created at {_when(request.evidence_at)}")


def _unread_reason(case: Case, request: RemediationRequest) -> str:
    """Why a request waits for Graph: what a person reads if Graph never answers."""
    alerts = ", ".join(_unconfirmed(case, request))
    return (f"alert(s) {alerts} could not be read from Graph (or not dated), so whether they "
            f"are new evidence after case {case.case_id} ({case.state.value}) acted at "
            f"{_when(case.acted_at)} is unknown; nothing was changed for them, and they are "
            "read again later")


def _new_evidence_reason(case: Case, request: RemediationRequest) -> str:
    return (f"new evidence after the unblock: {_evidence(case, request)}, after the block "
            f"was lifted at {_when(case.acted_at)}; the account may still be compromised (a "
            "consented app, a mailbox rule, the new password): a human must look before "
            "anything more is done")


def _handed_over(case: Case, request: RemediationRequest) -> str:
    return (f"new evidence: {_evidence(case, request)}, after case {case.case_id} was "
            f"{case.state.value}; the block it was handed for is still listed and a human "
            "owns it: nothing was changed")


def _merged_into(case: Case) -> str | None:
    """The case that took in this request's case (a lost race, a duplicate), if one did."""
    if case.state is not CaseState.SKIPPED:
        return None
    for step in reversed(case.steps):
        if step.name == MERGED_INTO and isinstance(step.data.get("case_id"), str):
            return str(step.data["case_id"])
    return None


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value else "an unknown time"


def _address_named(request: RemediationRequest) -> tuple[str, ...]:
    """The address a signal named (the alert's evidence, the list entry, a person): where
    the block may sit when it is an alias. An object id names no address."""
    return (request.user.lower(),) if "@" in request.user else ()


def request_data(request: RemediationRequest) -> dict[str, Any]:
    return {"request_id": request.request_id, "source": request.source,
            "requested_by": request.requested_by, "reason": request.reason,
            "alert_ids": list(request.alert_ids), "force": request.force,
            "evidence_at": request.evidence_at.isoformat() if request.evidence_at else None}
