"""Which case a request belongs to: its own (redelivered), an open or recent one (merged),
or a new one. One case per user and block episode, however many signals point at it."""

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.directory import DirectoryUser
from remediation.domain.errors import PermanentError
from remediation.domain.requests import RemediationRequest
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

    async def case_for(
            self, request: RemediationRequest) -> tuple[Case, bool, PermanentError | None]:
        """The case for this request, whether to run it, and a failed directory lookup."""
        assert request.request_id is not None
        known = await self._recorder.journal.case_with_request(request.request_id)
        if known is not None:
            return known, True, None
        # Cases are keyed by the account's sender address, however a request names it
        # (object id, UPN, alias), so one person never gets two cases and two resets.
        identity: DirectoryUser | None = None
        unknown: PermanentError | None = None
        try:
            identity = await self._directory.find_user(request.user)
        except PermanentError as error:
            unknown = error
        user = identity.sender_address if identity is not None else request.user
        latest = await self._recorder.journal.latest_case(user)
        if latest is not None and not request.force and await self._same_episode(latest):
            return await self._merge(latest, request), False, None
        return await self._open(request, user, identity), True, unknown

    async def reject(self, user: str, reason: str, source: str = "unknown",
                     request_id: str | None = None, alert_ids: tuple[str, ...] = ()) -> Case:
        """Journal an invalid request as a ``rejected`` case so it is never lost silently."""
        now = self._recorder.clock.now()
        case = Case(case_id=new_case_id(now), user=user, state=CaseState.REJECTED,
                    created_at=now, updated_at=now, source=source, reason=reason,
                    alert_ids=alert_ids, request_ids=(request_id,) if request_id else ())
        await self._recorder.journal.add_case(case)
        await self._recorder.journal.add_step(case.case_id,
                                              Step("rejected", StepStatus.INFO, now, reason))
        log.warning("rejected request for %s: %s", user, reason)
        return case

    async def _same_episode(self, case: Case) -> bool:
        """Does a new request belong to ``case`` (merge) rather than to a new block episode?

        Open cases absorb everything. An escalated case keeps absorbing requests about any
        block it was handed for as long as that block stays listed: the robot never lifts a
        block a human now owns (``force`` starts over). A verified case absorbs requests for
        a while unless a newer block shows a new episode.
        """
        if case.state in (CaseState.REJECTED, CaseState.SKIPPED, CaseState.PLANNED):
            return False
        if not case.state.is_final:
            return True
        recent = self._recorder.clock.now() - case.updated_at <= self._merge_window
        if case.state is CaseState.VERIFIED and not recent:
            return False
        entries = [entry for address in case.block_addresses
                   for entry in await self._exchange.blocked_entries(address)]
        if case.state is CaseState.ESCALATED:
            if not entries:
                return recent
            known = max(filter(None, (case.last_block_seen, case.block_created)),
                        default=case.updated_at)
            return not any(entry.is_newer_than(known) for entry in entries)
        # A case that found nothing to unblock knows no block time: then a block placed after
        # it acted is the newer one.
        known = case.block_created or case.unblocked_at or case.created_at
        return not any(entry.is_newer_than(known) for entry in entries)

    async def _merge(self, case: Case, request: RemediationRequest) -> Case:
        assert request.request_id is not None
        new_alerts = tuple(a for a in request.alert_ids if a not in case.alert_ids)
        case = await self._recorder.save(case, alert_ids=case.alert_ids + new_alerts,
                                         request_ids=(*case.request_ids, request.request_id))
        detail = f"duplicate {request.source} request merged; no second reset or unblock"
        if request.requested_by:
            detail += f" (requested by {request.requested_by})"
        case = await self._recorder.note(case, "merged", StepStatus.INFO, detail,
                                         request_data(request))
        log.info("request %s merged into case %s", request.request_id, case.case_id)
        if new_alerts:
            phase = {CaseState.VERIFIED: "verified", CaseState.ESCALATED: "escalated"}.get(
                case.state, "start")
            await self._outcomes.follow_up(case, phase)
        return await self._recorder.require(case.case_id)

    async def _open(self, request: RemediationRequest, user: str,
                    identity: DirectoryUser | None) -> Case:
        assert request.request_id is not None
        now = self._recorder.clock.now()
        case = Case(case_id=new_case_id(now), user=user, state=CaseState.RECEIVED,
                    created_at=now, updated_at=now, source=request.source,
                    reason=request.reason, requested_by=request.requested_by,
                    alert_ids=request.alert_ids, request_ids=(request.request_id,),
                    force=request.force, user_id=identity.id if identity else None,
                    sender=identity.sender_address if identity else None,
                    listed_addresses=_address_named(request))
        await self._recorder.journal.add_case(case)
        detail = f"{request.source} request" + (" (forced)" if request.force else "")
        if request.user != user:
            detail += f" for {request.user}"
        case = await self._recorder.note(case, "received", StepStatus.INFO, detail,
                                         request_data(request))
        if identity is not None:
            found = lookup_result(identity)
            case = await self._recorder.note(case, LOOKUP, StepStatus.DONE, found.detail,
                                             found.data)
        log.info("case %s opened for %s (%s)", case.case_id, case.user, request.source)
        return case


def _address_named(request: RemediationRequest) -> tuple[str, ...]:
    """The address a signal named (the alert's evidence, the list entry, a person): where
    the block may sit when it is an alias. An object id names no address."""
    return (request.user.lower(),) if "@" in request.user else ()


def request_data(request: RemediationRequest) -> dict[str, Any]:
    return {"request_id": request.request_id, "source": request.source,
            "requested_by": request.requested_by, "reason": request.reason,
            "alert_ids": list(request.alert_ids), "force": request.force}
