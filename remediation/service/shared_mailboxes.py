"""Disabled accounts and the mailboxes nobody signs in to (shared, room, equipment).

A blocked shared mailbox was used by somebody who may: the case escalates naming every
delegate (FullAccess, SendAs, SendOnBehalf: the accounts to secure; the guardrails word it),
and where its alerts' evidence names an account holding one of those rights, that account's
own case is opened (a normal request, source ``shared-mailbox``, its reason naming the
mailbox). The mailbox itself is never reset, and its block stays for a person.

Exchange is read only for disabled accounts (an enabled one signs in and is secured as any
other): ``Get-Mailbox`` for the mailbox's kind, and for a shared one its delegates.
"""

import hashlib
import logging
from typing import Any

from remediation.domain.alerts import evidence_accounts
from remediation.domain.delegates import Delegate, MailboxFacts
from remediation.domain.directory import DirectoryUser, bare_address
from remediation.domain.errors import InvalidRequest, PermanentError, RemediationError
from remediation.domain.requests import RemediationRequest, normalise_user
from remediation.service.claims import AlertClaims
from remediation.service.journaling import StepResult
from remediation.service.ports import Directory, MailboxDelegation, RequestSender

log = logging.getLogger(__name__)

SOURCE = "shared-mailbox"  # the source of a delegate's request


class SharedMailboxes:
    def __init__(self, directory: Directory, delegation: MailboxDelegation | None,
                 claims: AlertClaims, requests: RequestSender | None) -> None:
        self._directory = directory
        self._delegation = delegation
        self._requests = requests
        # Reads alerts back from Graph: the evidence naming a delegate here, the titles of
        # the rate-limit triage (service/triage.py).
        self.claims = claims

    async def facts(self, user: DirectoryUser) -> MailboxFacts | None:
        """What Exchange says of a disabled account's mailbox; None for an enabled account
        (or when no Exchange reader is configured). A refusal is kept as ``unreadable``;
        TransientError propagates (the guardrails are tried again later)."""
        if user.account_enabled is not False or self._delegation is None:
            return None
        try:
            kind = await self._delegation.recipient_type(user.sender_address)
            facts = MailboxFacts(kind=kind)
            if facts.unowned:
                delegates = await self._delegation.mailbox_delegates(user.sender_address)
                facts = MailboxFacts(kind=kind, delegates=tuple(delegates))
        except PermanentError as error:
            return MailboxFacts(unreadable=error.reason)
        return facts

    async def open_delegate_cases(self, case_id: str, alert_ids: tuple[str, ...],
                                  mailbox: DirectoryUser,
                                  guard: dict[str, Any]) -> StepResult:
        """Queue a request for each delegate of ``mailbox`` that the case's alerts' evidence
        names (a request id derived from the case and the delegate: queued twice, it is one
        request). What could not be read is said, never fatal: the escalation names every
        delegate whatever happens here."""
        delegates = [Delegate(str(item["name"]), tuple(item["rights"]))
                     for item in (guard.get("mailbox") or {}).get("delegates") or []]
        found, trouble = await self._named_delegates(alert_ids, mailbox, delegates)
        opened: list[dict[str, str]] = []
        for address, (delegate, alert_id) in found.items():
            if self._requests is None:
                trouble.append(f"no requests queue to open a case for {address}")
                continue
            try:
                user = normalise_user(address)
            except InvalidRequest as error:
                trouble.append(f"cannot open a case for {address}: {error.reason}")
                continue
            request = RemediationRequest(
                user=user, source=SOURCE, request_id=_request_id(case_id, address),
                reason=(f"sent as the blocked {guard['mailbox'].get('kind') or 'shared'} "
                        f"mailbox {mailbox.sender_address} (case {case_id}): Defender alert "
                        f"{alert_id} names this account, which holds "
                        f"{', '.join(delegate.rights)} on it")[:1000])
            await self._requests.send(request)
            opened.append({"user": address, "request_id": request.request_id or "",
                           "alert_id": alert_id, "rights": ", ".join(delegate.rights)})
        parts = [f"Opened a case for {item['user']} ({item['rights']}; named by Defender "
                 f"alert {item['alert_id']})" for item in opened]
        if not parts:
            parts = ["No alert of this case names one of its delegates: no case opened"]
        return StepResult("; ".join(parts + trouble), {"opened": opened, "trouble": trouble})

    async def _named_delegates(self, alert_ids: tuple[str, ...], mailbox: DirectoryUser,
                               delegates: list[Delegate],
                               ) -> tuple[dict[str, tuple[Delegate, str]], list[str]]:
        """Delegate address -> (the delegate, the alert naming it), for every account the
        alerts' evidence names other than the mailbox itself that is a delegate by one of
        its names, or that the directory resolves to one."""
        found: dict[str, tuple[Delegate, str]] = {}
        trouble: list[str] = []
        by_name = {bare_address(d.name): d for d in delegates if d.is_address}
        if not by_name:
            return found, trouble
        for alert_id in alert_ids:
            try:
                raw = await self.claims.read(alert_id)
            except RemediationError as error:
                trouble.append(f"alert {alert_id} could not be read ({error.reason})")
                continue
            for names in evidence_accounts((raw or {}).get("evidence")):
                if any(mailbox.owns(name) for name in names):
                    continue
                match = next((by_name[name] for name in sorted(names) if name in by_name), None)
                address = match.name.lower() if match else None
                if match is None:
                    account = await self._resolve(names, trouble)
                    match = next((d for n, d in by_name.items()
                                  if account is not None and account.owns(n)), None)
                    address = account.sender_address if account and match else None
                if match is not None and address is not None:
                    found.setdefault(address, (match, alert_id))
        return found, trouble

    async def _resolve(self, names: frozenset[str], trouble: list[str]) -> DirectoryUser | None:
        name = min(names, key=lambda n: ("@" not in n, n))  # an address before an object id
        try:
            return await self._directory.find_user(name)
        except PermanentError:
            return None
        except RemediationError as error:
            trouble.append(f"could not look up {name} ({error.reason})")
            return None


def _request_id(case_id: str, address: str) -> str:
    return "shared-" + hashlib.sha256(f"{case_id}|{address}".encode()).hexdigest()[:32]
