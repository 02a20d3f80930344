"""The guardrails, run before any change to an account: by a case (``securing.py``, and again
on approval), by an undo (``undo.py``) and by ``RETURN_ACTION=disable`` (``verification.py``),
which act hours or days after the case's own check. One function for all of them, so a rule
added here holds for every change the robot makes.

In order: the administrative unit the operator chose (``SCOPE_ADMINISTRATIVE_UNIT_ID``,
``scope.py``: an account outside it is not read further), then ``domain.guardrails.judge`` on
the account's groups, directory roles (active and PIM-eligible), protected groups, guest or
external identity, disabled state (with what Exchange says of its mailbox) and source of
authority (synced or federated).
"""

from typing import Protocol

from remediation.concurrently import each
from remediation.domain.delegates import MailboxFacts
from remediation.domain.directory import DirectoryUser
from remediation.domain.guardrails import Verdict, judge
from remediation.service.journaling import StepResult
from remediation.service.ports import Directory
from remediation.service.scope import (
    OUT_OF_SCOPE,
    AdministrativeScope,
    out_of_scope_reason,
    outside_unit,
)
from remediation.service.settings import WorkflowSettings


class MailboxFactsReader(Protocol):
    async def facts(self, user: DirectoryUser) -> MailboxFacts | None:
        """What Exchange says of a disabled account's mailbox (``SharedMailboxes.facts``)."""
        ...


class Guardrails:
    def __init__(self, directory: Directory, settings: WorkflowSettings,
                 mailboxes: MailboxFactsReader, scope: AdministrativeScope | None) -> None:
        """``settings``: ``protected_group_ids`` and ``administrative_unit_id``; ``scope``
        reads the unit's membership (needed when the settings name a unit)."""
        self._directory = directory
        self._settings = settings
        self._mailboxes = mailboxes
        self._scope = scope

    async def check(self, user: DirectoryUser) -> StepResult:
        """The guardrails on ``user`` as read: ``data["verdict"]`` (a ``Verdict`` value) and
        the facts they saw; ``data[OUT_OF_SCOPE]`` names the unit an account is not in.
        PermanentError / TransientError when a read fails (never "proceed" for "could not
        tell")."""
        unit = self._settings.administrative_unit_id
        if unit and self._scope is not None and not await self._scope.holds(unit, user.id):
            # First, before anything else is read of it: not the robot's to touch at all.
            return StepResult(out_of_scope_reason(user, unit),
                              {"verdict": Verdict.ESCALATE.value, OUT_OF_SCOPE: unit})
        # Side by side: none of these reads waits on another, and all are answered (or the
        # first failure raised, the rest cancelled) before anything is judged.
        memberships, domains, facts = await each(
            self._directory.memberships(user.id, self._settings.protected_group_ids),
            self._directory.tenant_domains(), self._mailboxes.facts(user))
        guard = judge(user, memberships, domains, self._settings.protected_group_ids, facts)
        detail = guard.reason or "an ordinary account: may be secured automatically"
        return StepResult(detail, {"verdict": guard.verdict.value, **guard.facts})

    async def check_now(self, user_id: str) -> tuple[DirectoryUser, StepResult]:
        """The account as the directory has it now (looked up by object id) and the
        guardrails on it. PermanentError when it is gone or a read is refused."""
        user = await self._directory.find_user(user_id)
        return user, await self.check(user)


def refusal(user: DirectoryUser, result: StepResult) -> str | None:
    """Why the guardrails' ``result`` forbids a change other than a case's own steps (an undo,
    a sign-in block), in a few words; None when they allow it. ``proceed`` allows it, and so
    does ``revoke_then_escalate`` (a synced or federated account: only its password is the
    on-premises side's); ``escalate`` and ``skip`` forbid it."""
    verdict = Verdict(result.data.get("verdict", Verdict.ESCALATE.value))
    if verdict in (Verdict.PROCEED, Verdict.REVOKE_THEN_ESCALATE):
        return None
    unit = result.data.get(OUT_OF_SCOPE)
    if isinstance(unit, str):
        return outside_unit(user, unit)
    return result.detail
