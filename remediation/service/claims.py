"""Alert ids a request names are claims: read back from Graph before the case says anything
on them.

Intake reads every alert it queues from Graph and matches it (an Office 365 outbound-spam
title, a sender in the evidence), so the alert id of a request with source ``alert`` is
confirmed as it comes. Any other request (a person at the command line, a hand-written queue
message, a sweep) may name any id at all: each is read back and must be an outbound-spam
alert, as the poll decides, about this case's account (the sender its evidence names is one
of the account's addresses or its object id, or the directory resolves it to the same
account). The others are journaled ``alert_ignored`` with the reason and leave the case's
alert ids, so no comment or status change ever reaches them.

Evidence naming the account under several names (a mailbox address and a UPN) is about it
when the directory resolves every name to it. The same rules decide, before a request is
placed, which of its ids are evidence at all (``why_not_evidence``): an id Graph does not
know is none, so it can neither open an episode nor send a case to a human.

Each id is settled once per case (``alert_confirmed`` or ``alert_ignored``); the alert
update settles whatever a request could not (Graph was down then), before it comments.
"""

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from remediation.domain.alerts import Alert, names_account, parse_alert, why_not_outbound_spam
from remediation.domain.cases import Case, StepStatus
from remediation.domain.directory import DirectoryUser, bare_address
from remediation.domain.errors import (
    ConcurrentUpdate,
    InvalidRequest,
    PermanentError,
    TransientError,
)
from remediation.domain.requests import describe, parse_evidence_time
from remediation.service.episodes import user_from_lookup
from remediation.service.journaling import LOOKUP, CaseRecorder
from remediation.service.ports import AlertSource, Directory

log = logging.getLogger(__name__)

CONFIRMED, IGNORED = "alert_confirmed", "alert_ignored"


async def one_account(directory: Directory, alert: Alert) -> DirectoryUser | None:
    """The one account every name of an ambiguous alert's evidence resolves to through
    the directory (a mailbox address and a UPN of one person are one account), or None when
    they are several accounts or a name the directory does not know. Raises TransientError
    when the directory cannot answer now."""
    found: DirectoryUser | None = None
    for name in alert.candidates:
        if found is not None and found.owns(name):
            continue
        try:
            user = await directory.find_user(name)
        except PermanentError:
            return None
        if found is not None and user.id != found.id:
            return None
        found = user
    return found


def settled_alerts(case: Case) -> dict[str, bool]:
    """Alert id -> confirmed (True) or ignored (False), as the case's journal says."""
    settled: dict[str, bool] = {}
    for step in case.steps:
        alert_id = step.data.get("alert_id")
        if step.name in (CONFIRMED, IGNORED) and isinstance(alert_id, str):
            settled.setdefault(alert_id, step.name == CONFIRMED)
    return settled


class AlertClaims:
    def __init__(self, recorder: CaseRecorder, source: AlertSource | None,
                 directory: Directory, titles: tuple[str, ...]) -> None:
        self._recorder = recorder
        self._source = source
        self._directory = directory
        self._titles = titles

    async def settle(self, case: Case, alert_ids: Iterable[str],
                     read: Mapping[str, dict[str, Any] | None] | None = None) -> Case:
        """Read back each of ``alert_ids`` that the case holds and has not settled, whatever
        the request said of its source (a queue message can claim any), and confirm or
        ignore it; ``read`` holds alerts already read from Graph for this request (alert id ->
        the alert, None when Graph knows no such alert). Returns the case without the ignored
        ids. Raises TransientError (Graph or
        the directory cannot answer now) with whatever was settled so far journaled."""
        settled = settled_alerts(case)
        pending = [alert_id for alert_id in dict.fromkeys(alert_ids)
                   if alert_id in case.alert_ids and alert_id not in settled]
        if pending:
            account = await self._account(case)
            for alert_id in pending:
                why, first = await self._why_not(alert_id, account, read or {})
                if why is None:
                    case = await self._recorder.note(
                        case, CONFIRMED, StepStatus.INFO,
                        f"alert {alert_id}: read back from Graph, an outbound-spam alert "
                        "about this account", {"alert_id": alert_id, "read_back": True,
                                               "first_activity": first})
                    settled[alert_id] = True
                else:
                    case = await self._recorder.note(
                        case, IGNORED, StepStatus.INFO,
                        f"alert {alert_id} ignored, never commented on or resolved: {why}",
                        {"alert_id": alert_id, "reason": why})
                    settled[alert_id] = False
                    log.warning("case %s: alert %s ignored: %s", case.case_id, alert_id, why)
        kept = tuple(alert_id for alert_id in case.alert_ids if settled.get(alert_id, True))
        if kept != case.alert_ids:
            try:
                case = await self._recorder.save(case, alert_ids=kept, touch=False)
            except ConcurrentUpdate:  # the ignored ones are journaled: the retry drops them
                raise TransientError(f"case {case.case_id} changed while its alert ids were "
                                     "checked") from None
        return case

    async def _account(self, case: Case) -> DirectoryUser | str:
        """The case's account (as its lookup found it), or why there is none."""
        found = case.done(LOOKUP)
        if found is not None:
            return user_from_lookup(found.data)
        try:
            return await self._directory.find_user(case.user_id or case.user)
        except PermanentError as error:
            return f"the case's account is not in the directory ({error.reason})"

    async def why_not_evidence(self, alert_id: str, raw: dict[str, Any] | None, name: str,
                               accounts: dict[str, DirectoryUser | str]) -> str | None:
        """Why an alert Graph answered ``raw`` for (None: "not found") is no evidence about
        the account ``name`` names, by the rules the case applies before it speaks on an
        alert; None when it is. The account is looked up only when the alert names it
        otherwise, once per ``accounts`` (name -> the account, or why there is none).
        Raises TransientError when the directory cannot answer now."""
        alert = self._outbound_spam(alert_id, raw)
        if isinstance(alert, str):
            return alert
        if alert.sender is not None and bare_address(alert.sender) == bare_address(name):
            return None
        if name not in accounts:
            try:
                accounts[name] = await self._directory.find_user(name)
            except PermanentError as error:
                accounts[name] = f"the request's account is not in the directory ({error.reason})"
        return await self._why_not_about(alert, accounts[name])

    async def read(self, alert_id: str) -> dict[str, Any] | None:
        """The alert as Graph has it now; None when it does not exist. Raises
        RemediationError when Graph cannot answer, PermanentError included."""
        if self._source is None:
            raise PermanentError("no alert source to read it back from")
        return await self._source.get_alert(alert_id)

    async def _why_not(self, alert_id: str, account: DirectoryUser | str,
                       read: Mapping[str, dict[str, Any] | None],
                       ) -> tuple[str | None, str | None]:
        """Why alert ``alert_id`` is not one this case may speak on (None: it may), and when
        its activity started (``firstActivityDateTime``, else ``createdDateTime``; ISO)."""
        if self._source is None:
            return "no alert source to read it back from", None
        try:
            raw = read[alert_id] if alert_id in read else await self.read(alert_id)
        except PermanentError as error:
            return f"could not be read back from Graph ({error.reason})", None
        alert = self._outbound_spam(alert_id, raw)
        if isinstance(alert, str):
            return alert, None
        assert raw is not None
        first = (parse_evidence_time(raw.get("firstActivityDateTime"))
                 or parse_evidence_time(raw.get("createdDateTime")))
        return (await self._why_not_about(alert, account),
                first.isoformat() if first else None)

    def _outbound_spam(self, alert_id: str, raw: dict[str, Any] | None) -> Alert | str:
        """The alert Graph answered ``raw`` for, when it is an open outbound-spam alert;
        else why not."""
        if raw is None:
            return "not found in Defender (Graph alerts_v2)"
        try:
            alert = parse_alert(raw)
        except InvalidRequest as error:
            return f"Graph's answer is unusable: {error.reason}"
        if alert.id != alert_id:
            return f"Graph answered with another alert ({describe(alert.id)})"
        why = why_not_outbound_spam(alert, self._titles)
        if why is not None:
            return why
        if alert.status == "resolved":
            return "already resolved in Defender: left as it is"
        return alert

    async def _why_not_about(self, alert: Alert, account: DirectoryUser | str) -> str | None:
        """Why ``alert`` is not about ``account`` (a reason: there is none), or None."""
        if isinstance(account, str):
            return account
        if alert.ambiguous:
            one = await one_account(self._directory, alert)
            if one is not None and one.id == account.id:
                return None
            return (f"its evidence names {len(alert.candidates)} names that are not all this "
                    f"account ({account.sender_address})")
        if alert.sender is None:
            return "its evidence names no sender"
        if names_account(alert, account):
            return None
        try:
            named = await self._directory.find_user(alert.sender)
        except PermanentError:
            named = None
        if named is not None and named.id == account.id:
            return None
        return f"it names {alert.sender}, not this account ({account.sender_address})"
