"""The delayed checks after an unblock: gone → verified; still listed → wait for the next
check, escalate after the last; blocked again → escalate at once, never a second unblock.

Each check reads the account's addresses from the directory as they are then (primary and
every SMTP alias) and looks up every one of them: a block under an alias the case never
listed, or one added after it planned, is the account's block as much as the listed one.

The finding of a check is journaled first and acted on after, so a redelivery after a
failure in between acts on the same finding instead of looking again.

With RETURN_ACTION=disable, a check that finds the attacker back blocks the account's sign-in,
a change made hours after the case's guardrails ran: they run again first, on the account as
it is then (``guarding.py``: the administrative unit, roles, protected groups, ...), journaled
``guardrails_before_block``; when they say no, the case escalates without the block, saying
why.
"""

from datetime import datetime, timedelta
from typing import Any

from remediation.domain.blocks import BlockedSender
from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.directory import DirectoryUser
from remediation.domain.durations import format_duration
from remediation.domain.errors import CaseBusy, InvalidRequest, PermanentError
from remediation.domain.escalation_kinds import EscalationKind
from remediation.service.addresses import account_addresses, current_addresses, entries_for
from remediation.service.admission import VERIFICATION_REFUSED, check_refusal
from remediation.service.case_lease import CaseLease
from remediation.service.guarding import Guardrails, refusal
from remediation.service.journaling import SCHEDULE, CaseRecorder, StepResult
from remediation.service.leftovers import Cleanup
from remediation.service.messages import VerificationCheck
from remediation.service.outcomes import Outcomes
from remediation.service.ports import Directory, RestrictedSenders

RETURNED = "returned"  # verify_N's twin: what was added to the account since the case acted
BLOCK_SIGN_IN = "block_sign_in"
BLOCK_GUARDRAILS = "guardrails_before_block"  # the guardrails again, before the sign-in block


class Verification:
    def __init__(self, recorder: CaseRecorder, outcomes: Outcomes, exchange: RestrictedSenders,
                 directory: Directory, delays: tuple[timedelta, ...],
                 cleanup: Cleanup | None = None, return_action: str = "escalate",
                 guardrails: Guardrails | None = None, lease: CaseLease | None = None,
                 ) -> None:
        """``guardrails``: run before the sign-in block; required with RETURN_ACTION=disable
        (ValueError without them). ``lease``: the workflow's claim on a case (a default one
        when not given)."""
        if return_action == "disable" and guardrails is None:
            raise ValueError("RETURN_ACTION=disable blocks sign-in, and no guardrails run "
                             "before it")
        self._guardrails = guardrails
        self._recorder = recorder
        self._cleanup = cleanup
        self._return_action = return_action
        self._outcomes = outcomes
        self._exchange = exchange
        self._directory = directory
        self._delays = delays
        self._lease = lease or CaseLease(recorder.journal, recorder.clock)

    async def verify(self, check: VerificationCheck) -> Case:
        """Run ``check`` when it matches what the case journaled (``admission``), else
        journal why it is refused and change nothing. Raises InvalidRequest for no case."""
        case = await self._recorder.journal.get_case(check.case_id)
        if case is None:
            raise InvalidRequest(f"no case {check.case_id!r} to verify")
        if _scheduling(case):  # a check due at once, come before its case has settled
            raise CaseBusy(f"case {case.case_id} is still journaling the checks it "
                           "scheduled; this one waits for that")
        refusal = check_refusal(case, check, self._recorder.clock.now())
        if refusal is not None:
            return await self._recorder.note(case, VERIFICATION_REFUSED, StepStatus.INFO,
                                             refusal, {"attempt": check.attempt})
        if case.state is not CaseState.AWAITING_VERIFICATION:
            return case
        name = f"verify_{check.attempt}"
        try:
            returned, user = await self._returned(case, check.attempt)
            if returned is not None and returned.data.get("added"):
                return await self._attacker_back(case.case_id, returned)
            case = await self._recorder.require(case.case_id)
            finding = case.done(name) or await self._look(case, name, check.attempt, user)
            return await self._conclude(case.case_id, check.attempt, finding)
        except PermanentError as error:  # the block was lifted: whatever refused, unverified
            return await self._outcomes.escalate(case.case_id, error.reason,
                                                 kind=EscalationKind.UNVERIFIED)

    async def _returned(self, case: Case, attempt: int,
                        ) -> tuple[Step | None, DirectoryUser | None]:
        """What was added to the account after the case cleaned it (sign-in methods,
        consents, rules, mailbox permissions), journaled before it is acted on; and the
        account as the directory gave it for that (None when not read now), which the same
        check's look at the list takes instead of reading it again."""
        if self._cleanup is None or not self._cleanup.kinds or case.user_id is None:
            return None, None
        name = f"{RETURNED}_{attempt}"
        done = case.done(name)
        if done is not None:
            return done, None
        with self._recorder.traced(case, name) as trace:
            user = await self._directory.find_user(case.user_id)
            added = await self._cleanup.returned(case, user)
            trace.done()
        detail = ("added since the case acted: " + "; ".join(
            f"{leftover.kind} {leftover.name}" for leftover in added)) if added else (
            "nothing added since the case acted")
        case = await self._recorder.note(case, name, StepStatus.DONE, detail,
                                         {"added": [leftover.to_dict() for leftover in added]})
        return case.done(name), user

    async def _attacker_back(self, case_id: str, returned: Step) -> Case:
        """Escalate at once; with RETURN_ACTION=disable block the account's sign-in first,
        if the guardrails, run again now, allow a change to it."""
        reason = f"the attacker is still active: {returned.detail}"
        if self._return_action != "disable":
            return await self._outcomes.escalate(case_id, reason,
                                                 kind=EscalationKind.ATTACKER_RETURNED)
        # A change in the tenant: one worker at a time (two copies of a check at once).
        async with self._lease.hold(case_id):
            case = await self._recorder.require(case_id)
            if case.state is not CaseState.AWAITING_VERIFICATION:
                return case  # the other copy escalated it
            user_id = case.user_id
            assert user_id is not None
            try:
                case, guard = await self._recorder.run(
                    case, BLOCK_GUARDRAILS, lambda: self._guardrails_now(user_id))
                why = guard.data.get("refused")
                if isinstance(why, str):
                    reason += (f"; sign-in NOT blocked (RETURN_ACTION=disable): the "
                               f"guardrails, checked again before it, say no: {why}")
                else:
                    await self._recorder.run(case, BLOCK_SIGN_IN,
                                             lambda: self._block_sign_in(user_id))
                    reason += "; sign-in blocked (RETURN_ACTION=disable): re-enable the " \
                        "account once a person has secured it"
            except PermanentError as error:
                reason += f"; sign-in could NOT be blocked: {error.reason}"
            return await self._outcomes.escalate(case_id, reason,
                                                 kind=EscalationKind.ATTACKER_RETURNED)

    async def _guardrails_now(self, user_id: str) -> StepResult:
        """The guardrails on the account as it is now; ``data["refused"]``: why they forbid
        the block (absent when they allow it)."""
        assert self._guardrails is not None
        user, result = await self._guardrails.check_now(user_id)
        why = refusal(user, result)
        detail = (f"checked again before blocking sign-in: {result.detail}" if why is None
                  else f"sign-in not blocked: {why}")
        return StepResult(detail, {**result.data, **({"refused": why} if why else {})})

    async def _block_sign_in(self, user_id: str) -> StepResult:
        await self._directory.disable_sign_in(user_id)
        return StepResult("sign-in blocked (accountEnabled false)")

    async def _look(self, case: Case, name: str, attempt: int,
                    user: DirectoryUser | None = None) -> Step:
        """The list now, for every address of the account: ``user`` as this check read it
        moments ago, else read now."""
        with self._recorder.traced(case, name) as trace:
            addresses = (account_addresses(case, user) if user is not None
                         else await current_addresses(self._directory, case))
            entries = await entries_for(self._exchange, addresses)
            trace.done()
        # The block we removed, or failing its time, the unblock itself: an entry created
        # after it is a new block; one whose time is unknown is never taken for one.
        known = case.block_created or case.unblocked_at
        newer = [entry for entry in entries if entry.is_newer_than(known)]
        since = format_duration(self._since(attempt))
        if newer:
            created = max((e.created for e in newer if e.created), default=None)
            case = await self._recorder.save(case, last_block_seen=created)
            listed = _addresses(newer)
            detail = f"blocked again at {_when(created)} as {', '.join(listed)}"
            data: dict[str, Any] = {"listed": True, "reblocked": True, "addresses": listed,
                                    "block_created": created.isoformat() if created else None}
        elif entries:
            listed = _addresses(entries)
            detail = f"still listed {since} after the unblock as {', '.join(listed)}"
            data = {"listed": True, "addresses": listed}
        else:
            detail = f"not on the Restricted users list {since} after the unblock"
            data = {"listed": False}
        case = await self._recorder.note(case, name, StepStatus.DONE, detail, data)
        finding = case.done(name)
        assert finding is not None
        return finding

    async def _conclude(self, case_id: str, attempt: int, finding: Step) -> Case:
        if finding.data.get("reblocked"):
            created = finding.data.get("block_created")
            when = _when(datetime.fromisoformat(created) if created else None)
            return await self._outcomes.escalate(
                case_id, f"re-blocked at {when}{_as(finding)} after the unblock: the account "
                "is probably still sending spam; investigate before unblocking again",
                kind=EscalationKind.REBLOCKED)
        if finding.data.get("listed"):
            if attempt >= len(self._delays) - 1:
                return await self._outcomes.escalate(
                    case_id, f"still on the Restricted users list{_as(finding)} "
                    f"{format_duration(self._since(attempt))} after the unblock",
                    kind=EscalationKind.STILL_LISTED)
            return await self._recorder.require(case_id)
        return await self._outcomes.verified(case_id, attempt)

    def _since(self, attempt: int) -> timedelta:
        return self._delays[min(attempt, len(self._delays) - 1)]


def _addresses(entries: list[BlockedSender]) -> list[str]:
    return list(dict.fromkeys(entry.sender_address for entry in entries))


def _as(finding: Step) -> str:
    """The listed addresses a finding names (older journals name none)."""
    listed = finding.data.get("addresses")
    return f" as {', '.join(map(str, listed))}" if isinstance(listed, list) and listed else ""


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value else "an unknown time"


def _scheduling(case: Case) -> bool:
    """The case is still being secured, and it scheduled its checks or is scheduling them:
    a check due at once may come before the schedule is journaled, or before the case is
    saved awaiting verification just after."""
    return case.state is CaseState.IN_PROGRESS and any(step.name == SCHEDULE
                                                        for step in case.steps)
