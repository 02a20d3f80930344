"""Securing an account and lifting its block, step by step, with the safety rails.

Order: look the user up → guardrails (accounts never to touch; a disabled account escalates,
a shared mailbox naming its delegates and opening the case of any its alerts name) → plan
(reads only; a rate-limit block no compromise alert names is held back as RATE_LIMIT_BLOCKS
says) → dry-run / rate-limit / approval gates (once approved: the guardrails again, on a
fresh lookup) → circuit breaker (a forced manual reset passes it but is counted) → reset
password → revoke sessions → mailbox hygiene → unblock (only after all of that succeeded) →
schedule the verification checks.
"""

import logging
import secrets
import sys
from dataclasses import asdict
from datetime import datetime, timedelta

from remediation.concurrently import all_of, each
from remediation.domain.blocks import BlockedSender
from remediation.domain.cases import Case, CaseState, StepStatus
from remediation.domain.directory import DirectoryUser
from remediation.domain.durations import format_duration
from remediation.domain.errors import (
    CaseBusy,
    OutcomeUnknown,
    PermanentError,
    RemediationError,
    TransientError,
)
from remediation.domain.escalation_kinds import EscalationKind
from remediation.domain.guardrails import Verdict
from remediation.domain.hygiene import (
    Finding,
    moves_mail,
    suspicious_forwarding,
    suspicious_rules,
)
from remediation.domain.leftovers import CompromiseWindow, Leftover
from remediation.domain.passwords import generate_password
from remediation.service.episodes import lookup_result, user_from_lookup
from remediation.service.guarding import Guardrails
from remediation.service.journaling import (
    BREAKER,
    GUARDRAILS,
    HYGIENE,
    LOOKUP,
    PLAN,
    RESET,
    REVOKE,
    SCHEDULE,
    UNBLOCK,
    CaseRecorder,
    StepResult,
)
from remediation.service.leftovers import PARTIAL, WINDOW, Cleanup
from remediation.service.messages import VerificationCheck
from remediation.service.outcomes import Outcomes
from remediation.service.pass_reads import PassReads
from remediation.service.ports import Directory, Mailbox, RestrictedSenders, VerificationScheduler
from remediation.service.scope import OUT_OF_SCOPE, AdministrativeScope
from remediation.service.settings import WorkflowSettings
from remediation.service.shared_mailboxes import SharedMailboxes
from remediation.service.triage import rate_limit_hold
from remediation.service.unsettled_unblock import (
    UNSETTLED,
    WAITING,
    still_settling,
    unsettled,
)

log = logging.getLogger(__name__)

BREAKER_WINDOW = timedelta(hours=1)
# How long a worker holds the reset step: longer than one delivery may work (the handler's
# DELIVERY_TIME_BUDGET), so only a worker that died loses it to another.
RESET_LEASE = timedelta(minutes=10)
FORCED_LIMIT = sys.maxsize  # a forced reset always gets its place in the count
GUARDRAILS_ON_APPROVAL = "guardrails_on_approval"
DELEGATE_CASES = "delegate_cases"  # a shared mailbox's delegates named by its alerts


class Securing:
    def __init__(self, recorder: CaseRecorder, outcomes: Outcomes, directory: Directory,
                 exchange: RestrictedSenders, mailbox: Mailbox | None,
                 scheduler: VerificationScheduler, settings: WorkflowSettings,
                 shared: SharedMailboxes, cleanup: Cleanup | None = None,
                 scope: AdministrativeScope | None = None) -> None:
        """``shared``: disabled accounts' mailboxes, delegates' cases, and the alert reads
        of the rate-limit triage; ``cleanup``: what the attacker left behind; ``scope``:
        administrative unit membership (settings.administrative_unit_id)."""
        self._recorder = recorder
        # The checks before any change: an undo and RETURN_ACTION=disable run them too.
        self.guardrails = Guardrails(directory, settings, shared, scope)
        self._shared = shared
        self._cleanup = cleanup
        self._outcomes = outcomes
        self._directory = directory
        self._exchange = exchange
        self._mailbox = mailbox
        self._scheduler = scheduler
        self._settings = settings

    async def run(self, case: Case) -> Case:
        """Take the case as far as it may go; PermanentError means escalate. The steps
        that read (guardrails, plan, compromise window) journal their ``done`` with the
        step after them, in one write (``CaseRecorder.run``'s ``hold_done``): a pass that
        fails writes what it holds before it raises, one that is cancelled (its time budget)
        writes nothing more, as if its process had stopped, and those steps run again
        (``CaseRecorder.holding``: what this pass holds, no other delivery writes)."""
        async with self._recorder.holding(case.case_id):
            return await self._run(case)

    async def _run(self, case: Case) -> Case:
        record = self._recorder
        reads = PassReads()  # this pass's answers, so nothing is read twice (pass_reads.py)
        if case.state is CaseState.RECEIVED:
            case = await record.save(case, state=CaseState.IN_PROGRESS)
        case, found = await record.run(case, LOOKUP, lambda: self._lookup(case))
        user = user_from_lookup(found.data)
        if case.user_id is None:
            case = await record.save(case, user_id=user.id, sender=user.sender_address,
                                     aliases=user.aliases)
        case, guard = await record.run(case, GUARDRAILS, lambda: self.guardrails.check(user),
                                       hold_done=True)
        verdict = Verdict(guard.data["verdict"])
        if verdict is Verdict.ESCALATE:
            # As the journal has it now: an alert merged meanwhile may name a delegate.
            case = await record.require(case.case_id)
            raise PermanentError(*await self._escalation(case, user, guard))
        if verdict is Verdict.SKIP:
            return await self._outcomes.end(case, CaseState.SKIPPED, guard.detail)
        case, plan = await record.run(case, PLAN, lambda: self._plan(case, user, verdict, reads),
                                      hold_done=True)
        listed = tuple(plan.data.get("listed_addresses") or ())
        if listed and listed != case.listed_addresses:
            case = await record.save(case, listed_addresses=listed)
        if "window" in plan.data:
            case, _ = await record.run(case, WINDOW, lambda: _window_result(plan.data["window"]),
                                       hold_done=True)
        held = plan.data.get("rate_limit") if not _approved(case) else None
        if self._settings.mode == "dry-run":
            return await self._outcomes.end(case, CaseState.PLANNED, f"dry run: {plan.detail}")
        if held and held["action"] == "escalate":
            raise PermanentError(held["reason"], EscalationKind.RATE_LIMIT)
        if self._needs_approval(case, held):
            return await self._await_approval(case, plan.detail)
        if _approved(case):  # the account may have changed while its case waited
            case, guard = await record.run(case, GUARDRAILS_ON_APPROVAL,
                                           lambda: self._guardrails_again(user))
            user = user_from_lookup(guard.data["lookup"])
            verdict = Verdict(guard.data["verdict"])
            if verdict is Verdict.ESCALATE:
                raise PermanentError(*await self._escalation(case, user, guard))
            if verdict is Verdict.SKIP:
                return await self._outcomes.end(case, CaseState.SKIPPED, guard.detail)
        case = await self._outcomes.follow_up(case, "start")
        if verdict is Verdict.REVOKE_THEN_ESCALATE:
            await record.run(case, REVOKE, lambda: self._revoke(user.id))
            raise PermanentError(f"sign-in sessions revoked; {guard.detail}",
                                 EscalationKind.ON_PREMISES)
        # Its repeat changes nothing (a case keeps its place): its done goes with the claim.
        case, _ = await record.run(case, BREAKER, lambda: self._breaker(case), hold_done=True)
        case = await self._reset_once(case, user.id)
        case, _ = await record.run(case, REVOKE, lambda: self._revoke(user.id))
        case, _ = await record.run(case, HYGIENE, lambda: self._hygiene(case, user, reads))
        window = case.done(WINDOW)
        if self._cleanup is not None and window is not None:
            case = await self._cleanup.clean(case, user,
                                             CompromiseWindow.from_dict(window.data), reads)
        try:
            case, unblocked = await record.run(case, UNBLOCK, lambda: self._unblock(case))
        except PermanentError as error:  # secured, still blocked: the block is a person's
            if error.kind is EscalationKind.REFUSED:
                raise PermanentError(error.reason, EscalationKind.UNBLOCK_FAILED) from error
            raise
        if case.unblocked_at is None:
            block = unblocked.data.get("block_created")
            case = await record.save(
                case, block_created=datetime.fromisoformat(block) if block else None,
                unblocked_at=datetime.fromisoformat(unblocked.data["at"]))
        case, _ = await record.run(case, SCHEDULE, lambda: self._schedule(case))
        return await record.save(case, state=CaseState.AWAITING_VERIFICATION)

    def _needs_approval(self, case: Case, held: dict[str, object] | None = None) -> bool:
        """Approve mode, or a rate-limit block RATE_LIMIT_BLOCKS=approve holds back, on a
        case not yet approved; a manual request proceeds at once (a person asked)."""
        wanted = self._settings.mode == "approve" or bool(held)
        return wanted and case.source != "manual" and not _approved(case)

    async def _escalation(self, case: Case, user: DirectoryUser,
                          guard: StepResult) -> tuple[str, EscalationKind]:
        """Why the guardrails escalate, and the kind; for a shared mailbox, also the cases
        opened for the delegates its alerts name (journaled once)."""
        if guard.data.get(OUT_OF_SCOPE):
            return guard.detail, EscalationKind.OUT_OF_SCOPE
        kind = (EscalationKind.DISABLED_ACCOUNT if guard.data.get("disabled")
                else EscalationKind.GUARDRAIL)
        if not (guard.data.get("mailbox") or {}).get("unowned"):
            return guard.detail, kind
        case, opened = await self._recorder.run(
            case, DELEGATE_CASES,
            lambda: self._shared.open_delegate_cases(case.case_id, case.alert_ids, user,
                                                     guard.data))
        return f"{guard.detail}. {opened.detail}", EscalationKind.SHARED_MAILBOX

    async def _await_approval(self, case: Case, plan: str) -> Case:
        case = await self._recorder.save(case, state=CaseState.AWAITING_APPROVAL,
                                         reason=f"waiting for approval: {plan}")
        case = await self._recorder.note(case, "awaiting_approval", StepStatus.INFO,
                                         f"run `remediation approve {case.case_id}` to "
                                         f"proceed, or `remediation reject {case.case_id}`")
        log.info("case %s for %s awaits approval", case.case_id, case.user)
        await self._outcomes.follow_up(case, "approval")  # the channel is told, once
        return await self._recorder.require(case.case_id)

    # -- the steps --------------------------------------------------------------------------

    async def _lookup(self, case: Case) -> StepResult:
        return lookup_result(await self._directory.find_user(case.user))

    async def _guardrails_again(self, user: DirectoryUser) -> StepResult:
        """The guardrails on a fresh lookup and fresh memberships: an account made an admin
        or put in a protected group while its case waited is escalated, not reset."""
        fresh, judged = await self.guardrails.check_now(user.id)
        return StepResult(f"checked again on approval: {judged.detail}",
                          {**judged.data, "lookup": lookup_result(fresh).data})

    async def _plan(self, case: Case, user: DirectoryUser, verdict: Verdict,
                    reads: PassReads | None = None) -> StepResult:
        """Everything that will be done, from reads only (the dry-run and approval output).
        Independent reads run side by side (the mailbox's findings and every leftover
        survey); what they answered is kept in ``reads`` for the rest of the pass."""
        if verdict is Verdict.REVOKE_THEN_ESCALATE:
            return StepResult("revoke sign-in sessions, then hand over to a human "
                              "(the password must be reset on-premises)", {"actions": []})
        # The case as the journal has it now, read beside the list (no round trip more): a
        # request merged since the pass began counts, its alerts in the triage (a compromise
        # alert secures a rate-limit block) and their first activity in the window.
        case, listed = await each(self._recorder.require(case.case_id),
                                  self._listed(case, user))
        entries = [entry for found in listed.values() for entry in found]
        held = await rate_limit_hold(
            case, user, {address: _newest(found) for address, found in listed.items()},
            self._settings.rate_limit_blocks, self._shared.claims)
        if held and held["action"] == "escalate":  # nothing else will be done
            return StepResult(held["reason"], {
                "actions": [held["reason"]], "listed": bool(entries),
                "listed_addresses": list(listed), "findings": [], "rate_limit": held})
        window = self._cleanup.window(case, entries) if self._cleanup is not None else None
        findings, (surveys, refused) = await each(
            self._findings(user), self._survey(user, window))
        if reads is not None:
            reads.findings, reads.surveys = list(findings), dict(surveys)
        act = self._settings.hygiene == "disable"
        actions = ["reset the password (change forced at next sign-in)",
                   "revoke sign-in sessions"]
        actions += [f"{'disable' if act else 'report'} {f.name!r}: {f.why}" if f.rule_id else
                    f"{'clear' if act else 'report'} mailbox forwarding: {f.why}"
                    for f in findings]
        actions += [f"remove the block of {address} (listed since "
                    f"{_when(_newest(found).created)})" for address, found in listed.items()]
        if not listed:
            actions.append("nothing to unblock (not on the Restricted users list)")
        data: dict[str, object] = {}
        if self._cleanup is not None and window is not None:
            actions[2 + len(findings):2 + len(findings)] = self._cleanup.plan_actions(
                surveys, refused)
            data = {"window": window.to_dict(), "leftovers_refused": refused,
                    "leftovers": {step: [leftover.to_dict() for leftover in found]
                                  for step, found in surveys.items()}}
        detail = "; ".join(actions)
        return StepResult(f"{held['reason']}. Once approved: {detail}" if held else detail, {
            "actions": actions, "listed": bool(entries), "listed_addresses": list(listed),
            "findings": [_finding_data(f) for f in findings],
            **({"rate_limit": held} if held else {}), **data})

    async def _survey(self, user: DirectoryUser, window: CompromiseWindow | None,
                      ) -> tuple[dict[str, list[Leftover]], dict[str, str]]:
        if self._cleanup is None or window is None:
            return {}, {}
        return await self._cleanup.survey(user, window)

    async def _listed(self, case: Case, user: DirectoryUser,
                      ) -> dict[str, list[BlockedSender]]:
        """Every address of the account on the Restricted users list, with its entries: the
        one a signal named first (the lookup made sure the account owns it), then the primary
        address, then each other SMTP address (an attacker may send from an alias). One
        Exchange read per address, all side by side."""
        candidates = list(dict.fromkeys(
            address.lower() for address in (*case.listed_addresses, user.sender_address,
                                            *user.proxy_addresses) if address))
        answers = await all_of([self._exchange.blocked_entries(address)
                                for address in candidates])
        return {address: entries for address, entries in zip(candidates, answers, strict=True)
                if entries}

    async def _breaker(self, case: Case) -> StepResult:
        limit = self._settings.max_resets_per_hour
        if _forced(case):
            # Past the limit, but it takes a place: the resets after it see it in the count.
            await self._recorder.journal.reserve_reset(
                case.case_id, self._recorder.clock.now(), FORCED_LIMIT, BREAKER_WINDOW)
            return StepResult("circuit breaker bypassed: forced manual request; the reset "
                              f"counts toward the limit of {limit} per hour all the same",
                              {"bypassed": True})
        if not await self._recorder.journal.reserve_reset(
                case.case_id, self._recorder.clock.now(), limit, BREAKER_WINDOW):
            raise PermanentError(
                f"circuit breaker open: the limit of {limit} password resets an hour is "
                "reached (MAX_REMEDIATIONS_PER_HOUR, forced resets included); nothing was "
                "changed. A storm like this is a mass "
                "compromise or a bug: a human must lead", EscalationKind.CIRCUIT_BREAKER)
        return StepResult(f"within the limit of {limit} resets per hour")

    async def _reset_once(self, case: Case, user_id: str) -> Case:
        """The reset step, claimed in the journal first: of two workers on one case (a
        redelivery while the first attempt still runs), one resets and the other tries again
        later. An attempt that ends, however it ends, gives the claim up; a worker that died
        holds it until its lease runs out."""
        if case.done(RESET) is not None:
            return case
        journal, holder = self._recorder.journal, secrets.token_hex(8)
        try:
            _, claimed = await each(self._recorder.flush(case.case_id),
                                    journal.claim_step(case.case_id, RESET, holder,
                                                       self._recorder.clock.now(), RESET_LEASE))
        except BaseException:  # the held done failed beside a claim that may have been made
            await self._release_reset(case.case_id, holder)
            raise
        if not claimed:
            raise CaseBusy("another worker is resetting this password right now; "
                           "trying again later (never twice)")
        try:
            case = await self._recorder.require(case.case_id)  # what that worker journaled
            case, _ = await self._recorder.run(case, RESET, lambda: self._reset(user_id))
        except BaseException:  # this attempt is over: a retry may reset (never two at once)
            await self._release_reset(case.case_id, holder)
            raise
        return case

    async def _release_reset(self, case_id: str, holder: str) -> None:
        """Give up the reset claim ``holder`` made, if it made one (else nothing changes)."""
        try:
            await self._recorder.journal.release_step(case_id, RESET, holder)
        except RemediationError as error:  # the lease runs out on its own
            log.warning("case %s: could not release the reset claim: %s", case_id,
                        error.reason)

    async def _reset(self, user_id: str) -> StepResult:
        await self._directory.reset_password(user_id, generate_password())
        return StepResult("new random password set, change forced at next sign-in; "
                          "the password was not kept or sent anywhere")

    async def _revoke(self, user_id: str) -> StepResult:
        await self._directory.revoke_sessions(user_id)
        return StepResult("sign-in sessions and refresh tokens revoked")

    async def _hygiene(self, case: Case, user: DirectoryUser,
                       reads: PassReads | None = None) -> StepResult:
        """Disable suspicious rules and clear forwarding. Each change is journaled the
        moment it is made (a ``partial`` note): a retry after a failure in between no longer
        finds a rule it disabled, and takes it from that note instead; one it finds again
        (enabled again meanwhile) it disables again. A change whose answer was lost
        (OutcomeUnknown) is noted so too before the attempt fails: it may have been made."""
        if self._mailbox is None:
            return StepResult("mailbox hygiene not configured")
        earlier = [Finding(**note.data[PARTIAL]) for note in case.steps
                   if note.name == HYGIENE and note.status is StepStatus.INFO
                   and isinstance(note.data.get(PARTIAL), dict)]
        planned = reads.take_findings() if reads is not None else None
        current = planned if planned is not None else await self._findings(user)
        # What an earlier attempt changed and is still as it left it; anything found again
        # (a rule enabled again meanwhile: a token outlives the revocation by up to an hour)
        # is changed again.
        findings = [*[f for f in earlier
                      if (f.rule_id, f.name) not in {(c.rule_id, c.name) for c in current}],
                    *current]
        data = {"findings": [_finding_data(f) for f in findings],
                "mode": self._settings.hygiene}
        if not findings:
            return StepResult("no suspicious inbox rules or forwarding", data)
        summary = "; ".join(f"{f.name}: {f.why}" for f in findings)
        if self._settings.hygiene == "report":
            return StepResult(f"found, reported and left as they are: {summary}", data)
        for finding in current:
            if reads is not None:  # the mailbox changes: later steps read it afresh
                reads.changed = True
            done = f"disabled {finding.name!r}" if finding.rule_id else "forwarding cleared"
            try:
                if finding.rule_id is not None:
                    await self._mailbox.disable_rule(user.id, finding.rule_id)
                else:
                    await self._mailbox.clear_forwarding(user.sender_address)
            except OutcomeUnknown:  # the retry may no longer find it: on record now
                await self._recorder.note(case, HYGIENE, StepStatus.INFO,
                                          f"{done}, perhaps (the answer was lost)",
                                          {PARTIAL: _finding_data(finding)})
                raise
            case = await self._recorder.note(case, HYGIENE, StepStatus.INFO, done,
                                             {PARTIAL: _finding_data(finding)})
        return StepResult(f"disabled or cleared (kept for review): {summary}", data)

    async def _findings(self, user: DirectoryUser) -> list[Finding]:
        if self._mailbox is None:
            return []
        mailbox = self._mailbox
        # Side by side: the rules, the forwarding and the domains; then, only for rules that
        # move mail, the folders' names (both reads at once).
        rules, forwarded, domains = await each(
            mailbox.inbox_rules(user.id), mailbox.forwarding(user.sender_address),
            self._domain_names())
        folders, well_known = (await each(mailbox.folder_names(user.id),
                                          mailbox.well_known_folders(user.id))
                               if moves_mail(rules) else ({}, {}))
        findings = suspicious_rules(rules, folders, domains, well_known)
        forwarding = suspicious_forwarding(forwarded, domains)
        return [*findings, *([forwarding] if forwarding else [])]

    async def _domain_names(self) -> frozenset[str]:
        return frozenset(self._settings.tenant_domains or
                         (await self._directory.tenant_domains()).names)

    async def _unblock(self, case: Case) -> StepResult:
        """Lift the block of each listed address; a redelivery repeats only what is left.
        Each address's entries are read again just before its block is removed, even in the
        pass that planned it: the list changes without us (a person's unblock, Exchange
        showing a removed entry a while longer, a new block), and what the step says it
        removed must be what was there."""
        now = self._recorder.clock.now()
        removed: dict[str, BlockedSender] = {}
        for address in case.block_addresses:
            block = await self._unblock_one(case, address)
            if block is not None:
                removed[address] = block
        if not removed:
            return StepResult("not on the Restricted users list; nothing to unblock",
                              {"listed": False, "at": now.isoformat()})
        newest = _newest(list(removed.values()))
        shown = "; ".join(f"{address} (blocked {_when(block.created)})"
                          for address, block in removed.items())
        return StepResult(
            f"removed from the Restricted users list: {shown}",
            {"listed": True, "block_created": _iso(newest.created),
             "block_reason": newest.reason, "addresses": list(removed),
             "at": now.isoformat()})

    async def _unblock_one(self, case: Case, address: str) -> BlockedSender | None:
        """Lift one address's block: the block lifted, or None when none was listed. A
        removal whose answer was lost is never sent again at once (``unsettled_unblock``)."""
        entries = await self._exchange.blocked_entries(address)
        lost = unsettled(case, address)
        if not entries:
            return lost.block if lost is not None else None
        block = _newest(entries)
        earlier = _block_seen_before(case, address)
        if earlier is not None and block.is_newer_than(earlier):
            await self._recorder.save(case, last_block_seen=block.created)
            raise PermanentError(
                f"{address} blocked again at {_when(block.created)} while the unblock was in "
                "progress: the account may still be sending spam; not unblocking again",
                EscalationKind.REBLOCKED)
        if still_settling(lost, block):
            await self._recorder.note(
                case, UNBLOCK, StepStatus.INFO, f"{address} still listed after a removal "
                "whose answer was lost: Exchange lists a lifted block for a while; reading "
                "again before sending it again", {"address": address, WAITING: True})
            raise TransientError(f"{address}: the earlier removal may have been carried out "
                                 "(Exchange still lists the block); reading again later")
        await self._recorder.note(case, UNBLOCK, StepStatus.INFO,
                                  f"{address} listed since {_when(block.created)} "
                                  f"({block.reason})",
                                  {"address": address, "block_created": _iso(block.created)})
        try:
            await self._exchange.unblock(address)
        except OutcomeUnknown:
            await self._recorder.note(
                case, UNBLOCK, StepStatus.INFO, f"{address}: Exchange's answer to the removal "
                "was lost; it may have been carried out: the next attempt reads the list first",
                {"address": address, UNSETTLED: True, "block_created": _iso(block.created),
                 "block_reason": block.reason})
            raise
        return block

    async def _schedule(self, case: Case) -> StepResult:
        base = case.unblocked_at or self._recorder.clock.now()
        checks = []
        for attempt, delay in enumerate(self._settings.verify_delays):
            at = base + delay
            check = VerificationCheck(case.case_id, case.user, attempt)
            sequence_number = await self._scheduler.schedule(check, at)
            checks.append({"attempt": attempt, "at": at.isoformat(),
                           "sequence_number": sequence_number})
        delays = ", ".join(format_duration(d) for d in self._settings.verify_delays)
        return StepResult(f"verification scheduled at +{delays}", {"checks": checks})


async def _window_result(raw: dict[str, object]) -> StepResult:
    window = CompromiseWindow.from_dict(raw)
    signs = "; ".join(window.signs)
    return StepResult(f"additions since {_when(window.opens)} count as the attacker's "
                      f"(the trouble started {_when(window.trouble_started)}: {signs})", raw)


def _approved(case: Case) -> bool:
    return any(step.name == "approved" for step in case.steps)


def _forced(case: Case) -> bool:
    """A person forced this case: a manual ``--force`` request opened it, or approved it
    while it waited (the workflow journals that approval with ``forced``)."""
    return (case.force and case.source == "manual") or any(
        step.name == "approved" and step.data.get("forced") is True for step in case.steps)


def _finding_data(finding: Finding) -> dict[str, object]:
    return asdict(finding)


def _newest(entries: list[BlockedSender]) -> BlockedSender:
    return max(entries, key=lambda entry: entry.created.timestamp() if entry.created else 0.0)


def _block_seen_before(case: Case, address: str) -> datetime | None:
    """The block of ``address`` an interrupted earlier attempt of the unblock step was about
    to remove."""
    for step in reversed(case.steps):
        if step.name == UNBLOCK and step.status is StepStatus.INFO and step.data.get(
                "block_created") and step.data.get("address", address) == address:
            return datetime.fromisoformat(step.data["block_created"])
    return None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value else "an unknown time"
