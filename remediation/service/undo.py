"""``remediation undo``: put back what a case changed that can be put back (issue 16, point 3).

What can be restored is what ``progress.made_changes`` attaches a ``Restore`` to: inbox rules
disabled through Graph (mailbox hygiene) or Exchange (``exchange_inbox_rules``), mailbox
forwarding cleared, consents revoked. The rest is said plainly: a password reset, revoked
sessions, removed sign-in methods (the person registers them again), the unblock, a sign-in
block (never lifted by the robot). The same record ``status`` lists, so both agree.

The command (``entrypoints/undo.py``) checks the case (``refusal``, ``plan``), journals
``undo_queued`` with a token and queues an ``UndoRequest`` on the requests queue (session:
the account), as ``approve`` does. A worker acts only when the case journaled that token and
no undo with it ended (``message_refusal``): a forged or replayed message is journaled
``undo_refused`` and changes nothing. The worker checks the case again (a newer case of the
account is looked for under every name the journal knows it by, ``account_cases``), then runs
the guardrails a case runs before any change, on the account as it is now
(``guarding.py``: the administrative unit, directory roles active or eligible, protected
groups, guests, a disabled account ...): when they say no, ``undo_refused`` with their reason,
nothing changed. Then it restores each change as its own journaled step: a redelivery skips
those done, and each looks before it acts (a consent is read before it is granted again, so it
is never granted twice; forwarding is read before it is set, and one set again since is left
alone). A transient failure is retried by the handler within
MAX_DELIVERY_COUNT; on the last attempt ``Undoing.gave_up`` ends the undo with the reason.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from remediation.domain.cases import Case, CaseState, StepStatus
from remediation.domain.directory import DirectoryUser, bare_address
from remediation.domain.display import shown
from remediation.domain.errors import InvalidRequest, PermanentError, RemediationError
from remediation.domain.hygiene import MailboxForwarding
from remediation.domain.requests import SCHEMA_VERSION, decode_json, describe, normalise_user
from remediation.domain.undo import (
    ALREADY,
    ITEM_PREFIX,
    RESTORED,
    UNDO_FINISHED,
    UNDO_REFUSED,
    Call,
    Restore,
    ended,
    item_step,
    queued,
    restorations,
    restored,
)
from remediation.service.admission import names_of
from remediation.service.guarding import Guardrails
from remediation.service.guarding import refusal as guardrails_refusal
from remediation.service.journaling import CaseRecorder
from remediation.service.ports import Journal
from remediation.service.progress import Made, made_changes

TOKEN_LIMIT, LINE_LIMIT = 64, 400
NEWER_CASES_READ = 50  # each name's newest cases read to find one newer than the undone


class Restorer(Protocol):
    """The calls that put changes back (``adapters/tenant_restorer.py``). Each raises
    PermanentError when the service refuses (a rule no longer there), TransientError when a
    later attempt may succeed."""

    async def enable_graph_rule(self, user_id: str, rule_id: str) -> None: ...

    async def enable_exchange_rule(self, mailbox: str, identity: str) -> None: ...

    async def forwarding(self, address: str) -> MailboxForwarding: ...

    async def set_forwarding(self, address: str, forwarding: MailboxForwarding) -> None: ...

    async def grant(self, grant_id: str) -> dict[str, Any] | None:
        """The delegated permission grant, None when Graph has none with that id."""
        ...

    async def create_grant(self, body: Mapping[str, Any]) -> bool:
        """Create it; False when Graph says it exists already (409)."""
        ...


@dataclass(frozen=True)
class UndoRequest:
    """Undo case ``case_id``: acts only if the case journaled ``token`` (``undo_queued``)."""

    case_id: str
    user: str
    token: str

    def to_json(self) -> str:
        return json.dumps({"schema": SCHEMA_VERSION, "kind": "undo", "case_id": self.case_id,
                           "user": self.user, "token": self.token}, separators=(",", ":"))


def undo_in(body: bytes) -> UndoRequest | None:
    """The undo a requests-queue message carries, None for another kind. InvalidRequest for
    an undo without its fields or with others."""
    try:
        fields = decode_json(body)
    except InvalidRequest:
        return None  # parse_request says what is wrong with it
    if not isinstance(fields, dict) or fields.get("kind") != "undo":
        return None
    unknown = sorted(str(name) for name in set(fields) - {
        "schema", "kind", "case_id", "user", "token"})
    if unknown:
        raise InvalidRequest("unknown field(s) in an undo: "
                             + ", ".join(describe(name) for name in unknown))
    case_id, token = fields.get("case_id"), fields.get("token")
    if not isinstance(case_id, str) or not 0 < len(case_id) <= 64:
        raise InvalidRequest("an undo needs a 'case_id'")
    if not isinstance(token, str) or not 0 < len(token) <= TOKEN_LIMIT:
        raise InvalidRequest("an undo needs a 'token'")
    return UndoRequest(case_id, normalise_user(fields.get("user")), token)


@dataclass(frozen=True)
class UndoPlan:
    """A case's changes as undo sees them: to restore, restored already, not restorable."""

    case: Case
    to_restore: tuple[Made, ...]
    restored: tuple[Made, ...]
    cannot: tuple[Made, ...]

    def lines(self, verb: str) -> list[str]:
        """One line per change for a person: ``verb`` ("would restore", "will restore") for
        those to restore, then those restored already, then those that cannot be."""
        return ([_line(f"{verb}: {made.what} [{made.step}] ({how(made)})")
                 for made in self.to_restore]
                + [_line(f"restored already: {made.what} [{made.step}]: {made.undo}")
                   for made in self.restored]
                + [_line(f"cannot be restored: {made.what} [{made.step}]: {made.undo}")
                   for made in self.cannot])


def plan(case: Case, step: str | None = None) -> UndoPlan:
    """What undoing ``case`` (only its step ``step``, when given) means. InvalidRequest when
    ``step`` names no step that changed something."""
    made = made_changes(case)
    if step is not None:
        steps = list(dict.fromkeys(change.step for change in made))
        if step not in steps:
            known = (f"its steps with changes: {', '.join(steps)}" if steps
                     else "it changed nothing")
            raise InvalidRequest(f"--step {describe(step, 40)}: case {case.case_id} made no "
                                 f"change in such a step ({known})")
        made = [change for change in made if change.step == step]
    done = {key for key, record in restorations(case).items()
            if record.status is StepStatus.DONE}
    return UndoPlan(
        case,
        tuple(c for c in made if c.restore is not None and (c.step, c.key) not in done),
        tuple(c for c in made if c.restore is not None and (c.step, c.key) in done),
        tuple(c for c in made if c.restore is None))


def refusal(case: Case, others: Sequence[Case]) -> str | None:
    """Why ``case`` may not be undone now, or None. ``others``: the account's cases (any;
    those newer than ``case`` count). A case still working, one that only planned, and one
    with a newer case of the account working or holding changes of its own not undone, are
    refused: undoing under a case at work would fight it."""
    if not case.state.is_final:
        return (f"case {case.case_id} is {case.state.value}: it is still working; undo it "
                "once it has ended")
    if case.state is CaseState.PLANNED:
        return (f"case {case.case_id} is planned (a dry run): it changed nothing in the "
                "tenant, there is nothing to undo")
    for other in others:
        if other.case_id == case.case_id or other.created_at <= case.created_at:
            continue
        if not other.state.is_final:
            return (f"a newer case of this account, {other.case_id}, is {other.state.value}: "
                    f"undo case {case.case_id} once it has ended")
        if plan(other).to_restore:
            return (f"a newer case of this account, {other.case_id}, changed it since: undo "
                    f"that case first (its changes come after these), or put things back by "
                    "hand")
    return None


async def account_cases(journal: Journal, case: Case) -> list[Case]:
    """The cases of ``case``'s account, under every name the journal knows it by, as
    ``status --user`` finds them (``Journal.users_known_as`` of each name the case records:
    its address, object id, aliases): a later case is journaled under the primary address
    of its time, which a rename changes. The newest ``NEWER_CASES_READ`` of each name."""
    names = {case.user}
    for name in sorted(case.known_as):
        names |= await journal.users_known_as(name)
    found: dict[str, Case] = {}
    for user in sorted(names):
        for other in await journal.list_cases(user, limit=NEWER_CASES_READ):
            found[other.case_id] = other
    return sorted(found.values(), key=lambda other: other.created_at, reverse=True)


def message_refusal(case: Case, request: UndoRequest) -> str | None:
    """Why an undo message may not act on ``case``, or None: it must name the case's account
    and carry a token the case journaled (``undo_queued``) whose undo has not ended."""
    if request.user.lower() not in names_of(case):
        return (f"undo refused: it names {request.user}, but case {case.case_id} is about "
                f"{case.user}; nothing was done")
    if queued(case, request.token) is None:
        return f"undo refused: case {case.case_id} queued no such undo; nothing was done"
    end = ended(case, request.token)
    if end is not None:
        return (f"undo refused: the undo it names ended already ({end.name}, "
                f"{end.at:%Y-%m-%d %H:%M} UTC); nothing was done again")
    return None


def how(made: Made) -> str:
    """How ``made`` is put back, in a few words."""
    restore = made.restore
    if restore is None:
        return "-"
    if restore.call is Call.GRAPH_RULE:
        return "enabled again through Graph"
    if restore.call is Call.EXCHANGE_RULE:
        return ("Enable-InboxRule, which also removes the mailbox's Outlook client-side "
                "rules")
    if restore.call is Call.FORWARDING:
        wanted = _forwarding(restore)
        targets = [value for value in (wanted.forwarding_smtp_address,
                                       wanted.forwarding_address) if value]
        return ("Set-Mailbox: forwards all mail to " + ", ".join(map(bare_address, targets))
                + (" (keeping a copy)" if wanted.deliver_to_mailbox_and_forward else "")
                + " again")
    body = restore.target.get("body") or {}
    return f"granted again as it was: scope {body.get('scope') or '(none)'}"


class Undoing:
    """The worker's side: acts on an ``UndoRequest``."""

    def __init__(self, recorder: CaseRecorder, restorer: Restorer, guardrails: Guardrails,
                 *, mode: str = "enforce") -> None:
        """``guardrails``: the workflow's own (``RemediationWorkflow.guardrails``)."""
        self._recorder = recorder
        self._restorer = restorer
        self._guardrails = guardrails
        self._mode = mode  # REMEDIATION_MODE: dry-run restores nothing

    async def run(self, request: UndoRequest) -> Case:
        """Restore what the undo queued with ``request.token`` names. InvalidRequest for no
        such case; TransientError when a later attempt may succeed (the handler retries)."""
        case = await self._recorder.require(request.case_id)
        why = message_refusal(case, request)
        if why is not None:
            return await self._refuse(case, request.token, why)
        note = queued(case, request.token)
        assert note is not None
        step, by = note.data.get("step"), str(note.data.get("by") or "")
        others = await account_cases(self._recorder.journal, case)
        why = refusal(case, others)
        try:
            todo = plan(case, step if isinstance(step, str) else None).to_restore
        except InvalidRequest as error:
            why = why or error.reason
            todo = ()
        if why is not None:
            return await self._refuse(case, request.token, f"undo refused: {why}")
        if self._mode == "dry-run":
            return await self._refuse(case, request.token, (
                "undo refused: REMEDIATION_MODE=dry-run changes nothing; it would restore: "
                + "; ".join(made.what for made in todo)))
        user = await self._account(case, request.token)
        if isinstance(user, Case):
            return user
        for made in todo:
            case = await self._restore(case, made, user, by, request.token)
        return await self._finish(case, request.token, by)

    async def gave_up(self, request: UndoRequest, reason: str) -> Case:
        """End the undo after its last attempt: what was restored stays restored."""
        case = await self._recorder.require(request.case_id)
        note = queued(case, request.token)
        if note is None or message_refusal(case, request) is not None:
            return case
        return await self._finish(case, request.token, str(note.data.get("by") or ""),
                                  gave_up=reason)

    async def _account(self, case: Case, token: str) -> DirectoryUser | Case:
        """The account as the directory has it now, or the case with the undo refused (gone,
        or one the guardrails say the robot may not change)."""
        if case.user_id is None:
            return await self._refuse(case, token, "undo refused: the case never found the "
                                                   "account; nothing was done")
        try:
            user, guard = await self._guardrails.check_now(case.user_id)
        except PermanentError as error:
            return await self._refuse(case, token, f"undo refused: the account cannot be "
                                                   f"read ({error.reason}); nothing was done")
        why = guardrails_refusal(user, guard)
        if why is not None:
            return await self._refuse(case, token, f"undo refused: {why}; nothing was done")
        return user

    async def _restore(self, case: Case, made: Made, user: DirectoryUser, by: str,
                       token: str) -> Case:
        if restored(case, made.step, made.key) is not None:
            return case  # a redelivery: done by an earlier attempt
        name = item_step(made.step, made.key)
        data = {"step": made.step, "key": made.key, "by": by, "token": token}
        record = self._recorder
        case = await record.note(case, name, StepStatus.STARTED, f"restoring {made.what}", data)
        try:
            result = await self._call(made.restore, user)
        except PermanentError as error:
            return await record.note(case, name, StepStatus.FAILED, error.reason,
                                     {**data, "permanent": True, "why": error.reason})
        except RemediationError as error:
            await record.note(case, name, StepStatus.FAILED, error.reason,
                              {**data, "permanent": False})
            raise
        detail = (f"undone: {made.what}" if result == RESTORED
                  else f"{made.what}: already as it was, nothing to do")
        return await record.note(case, name, StepStatus.DONE, detail, {**data, "result": result})

    async def _call(self, restore: Restore | None, user: DirectoryUser) -> str:
        assert restore is not None
        target = restore.target
        if restore.call is Call.GRAPH_RULE:
            await self._restorer.enable_graph_rule(user.id, str(target["rule_id"]))
            return RESTORED
        if restore.call is Call.EXCHANGE_RULE:
            await self._restorer.enable_exchange_rule(user.user_principal_name,
                                                      str(target["identity"]))
            return RESTORED
        if restore.call is Call.FORWARDING:
            return await self._set_forwarding(user.sender_address, _forwarding(restore))
        return await self._grant(dict(target.get("body") or {}), str(target.get("id")), user)

    async def _set_forwarding(self, address: str, wanted: MailboxForwarding) -> str:
        now = await self._restorer.forwarding(address)
        if _same(now, wanted):
            return ALREADY
        if now.forwarding_smtp_address or now.forwarding_address:
            shown_now = bare_address(now.forwarding_smtp_address or now.forwarding_address or "")
            raise PermanentError(f"mailbox forwarding was set again since the case cleared it "
                                 f"(now to {shown_now}): left as it is")
        await self._restorer.set_forwarding(address, wanted)
        return RESTORED

    async def _grant(self, body: dict[str, Any], grant_id: str, user: DirectoryUser) -> str:
        """Look first, grant only when Graph has no such grant: never twice. A grant that is
        not this account's own (consentType Principal, its object id) is never created."""
        if body.get("consentType") != "Principal" or str(
                body.get("principalId") or "").lower() != user.id.lower():
            raise PermanentError("the journaled grant is not this account's own consent: "
                                 "not granted")
        now = await self._restorer.grant(grant_id)
        if now is not None:
            wanted, held = set(str(body.get("scope") or "").split()), set(
                str(now.get("scope") or "").split())
            if wanted <= held:
                return ALREADY
            raise PermanentError(f"the app holds a grant again with scope "
                                 f"{' '.join(sorted(held)) or '(none)'}, not all of "
                                 f"{' '.join(sorted(wanted))}: left as it is")
        return RESTORED if await self._restorer.create_grant(body) else ALREADY

    async def _refuse(self, case: Case, token: str, why: str) -> Case:
        return await self._recorder.note(case, UNDO_REFUSED, StepStatus.INFO, why,
                                         {"token": token})

    async def _finish(self, case: Case, token: str, by: str, gave_up: str = "") -> Case:
        last: dict[str, Any] = {}
        for record in case.steps:
            if record.name.startswith(ITEM_PREFIX) and record.data.get("token") == token:
                last[record.name] = record
        done = [r.detail for r in last.values() if r.status is StepStatus.DONE]
        failed = [{"step": r.data.get("step"), "why": r.detail} for r in last.values()
                  if r.status is StepStatus.FAILED]
        parts = [f"restored {len(done)}" + (f": {'; '.join(done)}" if done else "")]
        if failed:
            parts.append(f"not restored {len(failed)}: "
                         + "; ".join(f"[{f['step']}] {f['why']}" for f in failed))
        if gave_up:
            parts.insert(0, gave_up)
        who = f" by {by}" if by else ""
        return await self._recorder.note(
            case, UNDO_FINISHED, StepStatus.INFO, f"undo{who}: " + "; ".join(parts),
            {"token": token, "by": by, "restored": done, "not_restored": failed,
             **({"gave_up": gave_up} if gave_up else {})})


def _forwarding(restore: Restore) -> MailboxForwarding:
    """The forwarding Get-Mailbox showed before hygiene cleared it (its snapshot)."""
    snapshot = restore.target

    def text(name: str) -> str | None:
        value = snapshot.get(name)
        return str(value) if value not in (None, "") else None

    return MailboxForwarding(text("ForwardingSmtpAddress"), text("ForwardingAddress"),
                             snapshot.get("DeliverToMailboxAndForward") is True)


def _same(now: MailboxForwarding, wanted: MailboxForwarding) -> bool:
    def key(value: MailboxForwarding) -> tuple[str, str, bool]:
        return (bare_address(value.forwarding_smtp_address or ""),
                (value.forwarding_address or "").lower(),
                value.deliver_to_mailbox_and_forward)

    return key(now) == key(wanted)


def _line(text: str) -> str:
    return shown(text, LINE_LIMIT)
