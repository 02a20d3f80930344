"""What the robot did to an account and what it did not, read from the case's journal.

Escalation notices (the Teams card, the Slack text, the Defender comment) carry both lists so
the person taking over knows where to start. Only the steps that change the account count:
the password reset, the session revocation, the mailbox hygiene and the unblock, in that
order. A step is *done* when the journal says so; a step that was refused (a permanent
failure) or never started is *not done*; a step that started and got no clear answer (a
timeout, a 5xx, a crash) may have happened, and is said to be *not confirmed*.
"""

from collections.abc import Sequence
from typing import Any, NamedTuple

from remediation.domain.cases import Case, Step, StepStatus
from remediation.domain.consents import regrant_body
from remediation.domain.display import shown
from remediation.domain.undo import Call, Restore, restorations
from remediation.service.journaling import HYGIENE, PLAN, RESET, REVOKE, UNBLOCK
from remediation.service.leftovers import PARTIAL, UNSURE

NAME_LIMIT, NAMES_SHOWN = 60, 3
UNCONFIRMED = "not confirmed (no clear answer)"


class Progress(NamedTuple):
    done: tuple[str, ...]
    not_done: tuple[str, ...]


def progress(case: Case) -> Progress:
    """The account-changing steps of ``case``: what was done and what was not, in order."""
    done: list[str] = []
    not_done: list[str] = []
    simple = ((RESET, "password reset (change forced at next sign-in)", "password not reset",
               f"password reset {UNCONFIRMED}"),
              (REVOKE, "sign-in sessions revoked", "sign-in sessions not revoked",
               f"session revocation {UNCONFIRMED}"))
    for name, did, did_not, unsure in simple:
        if case.done(name) is not None:
            done.append(did)
        else:
            not_done.append(unsure if _unsure(case, name) else did_not)
    _hygiene(case, done, not_done)
    _leftovers(case, done, not_done)
    _unblock(case, done, not_done)
    return Progress(tuple(done), tuple(not_done))


class Change(NamedTuple):
    """A change the case made to the account, and what undoes it (or why nothing can)."""

    what: str
    undo: str


class Made(NamedTuple):
    """A ``Change`` with where it comes from: ``step`` is the journal step that made it
    (``remediation undo --step`` takes it), ``key`` names it among that step's changes,
    ``restore`` says how the robot puts it back (None: it cannot; ``undo`` says who does
    what instead)."""

    what: str
    undo: str
    step: str
    key: str
    restore: Restore | None = None


# The step verification journals when RETURN_ACTION=disable blocks sign-in
# (service/verification.py BLOCK_SIGN_IN; not imported: verification reaches this module).
BLOCK_SIGN_IN = "block_sign_in"
EXCHANGE_RULES, CONSENTS = "exchange_inbox_rules", "consent_grants"


def changes(case: Case) -> list[Change]:
    """Every change ``case`` made to the account, in order, each with what undoes it: the
    journal's own record, for the person who must put something back. A change an undo
    restored says so (by whom, when), one it could not says why."""
    return [Change(made.what, made.undo) for made in made_changes(case)]


def made_changes(case: Case) -> list[Made]:
    """``changes`` with the step, key and restoration of each: what ``remediation undo``
    lists and restores, so that it and ``status`` agree."""
    made: list[Made] = []
    if case.done(RESET) is not None:
        made.append(Made("password reset", "cannot be undone: the person sets a new "
                                             "password at their next sign-in", RESET, "password"))
    if case.done(REVOKE) is not None:
        made.append(Made("sign-in sessions revoked", "cannot be undone: the person signs "
                                                       "in again", REVOKE, "sessions"))
    hygiene = case.done(HYGIENE)
    made_findings = (_findings(hygiene.data) if hygiene is not None
                     and hygiene.data.get("mode") == "disable"
                     else [] if hygiene is not None else _hygiene_partials(case))
    if made_findings:
        for finding in made_findings:
            name = shown(str(finding.get("name") or ""), NAME_LIMIT)
            if finding.get("rule_id"):
                made.append(Made(f"inbox rule “{name}” disabled", "enable it again in "
                                   "Outlook, or Enable-InboxRule (kept, with a snapshot)",
                                   HYGIENE, str(finding["rule_id"]), Restore(
                                       Call.GRAPH_RULE, {"rule_id": str(finding["rule_id"])})))
            else:
                made.append(Made("mailbox forwarding cleared", "set it again with "
                                   "Set-Mailbox (the journal's snapshot has the old value)",
                                   HYGIENE, "forwarding", Restore(
                                       Call.FORWARDING, dict(finding.get("snapshot") or {}))))
    for step in _leftover_steps(case):
        keys = [str(key) for key in step.data.get("removed", [])]
        found = {str(item.get("key")): item for item in step.data.get("found", [])
                 if isinstance(item, dict)}
        entries = [change for change in step.data.get("changes", []) if isinstance(change, dict)]
        for index, change in enumerate(entries):
            key = keys[index] if len(keys) == len(entries) else ""
            made.append(Made(shown(str(change.get("what") or ""), NAME_LIMIT * 2),
                               shown(str(change.get("undo") or "-"), NAME_LIMIT * 4),
                               step.name, key, _leftover_restore(step.name, found.get(key))))
    made += [Made(shown(note.detail, NAME_LIMIT * 2),
                    shown(str(note.data[PARTIAL].get("undo") or "-"), NAME_LIMIT * 4),
                    note.name, str(note.data[PARTIAL].get("key") or ""),
                    _leftover_restore(note.name, note.data[PARTIAL]))
             for note in _unfinished_removals(case)]
    unblock = case.done(UNBLOCK)
    if unblock is not None and unblock.data.get("listed", True):
        made.append(Made("block removed from the Restricted users list",
                           "nothing to undo: Exchange blocks the account again if it sends "
                           "spam again", UNBLOCK, "block"))
    if case.done(BLOCK_SIGN_IN) is not None:
        made.append(Made("sign-in blocked (RETURN_ACTION=disable)", SIGN_IN_BLOCKED,
                           BLOCK_SIGN_IN, "sign-in"))
    records = restorations(case)
    return [_with_undo(change, records.get((change.step, change.key))) for change in made]


SIGN_IN_BLOCKED = ("not undone by the robot, which never re-enables an account: once a "
                   "person has secured it, an administrator sets Account enabled again "
                   "(Entra admin center, the user's properties; or Graph PATCH of the user "
                   "with accountEnabled true)")


def _with_undo(change: Made, record: Step | None) -> Made:
    """``change`` as an undo left it: restored (by whom, when), or not, and why."""
    if record is None or change.restore is None:
        return change
    by = str(record.data.get("by") or "")
    if record.status is StepStatus.DONE:
        who = f" ({shown(by, NAME_LIMIT)})" if by else ""
        return change._replace(undo=f"restored by undo{who} at {record.at:%Y-%m-%d %H:%M} UTC")
    why = shown(str(record.data.get("why") or record.detail), NAME_LIMIT * 2)
    return change._replace(undo=f"undo could not restore it ({why}); {change.undo}")


def _leftover_restore(step: str, entry: object) -> Restore | None:
    """How a cleanup step's removal is put back: a hidden rule enabled again through
    Exchange, a consent granted again as it was; None for the rest (a sign-in method is the
    person's to register again)."""
    if not isinstance(entry, dict):
        return None
    snapshot = entry.get("snapshot") if isinstance(entry.get("snapshot"), dict) else {}
    assert isinstance(snapshot, dict)
    if step == EXCHANGE_RULES:
        return Restore(Call.EXCHANGE_RULE,
                       {"identity": str(snapshot.get("RuleIdentity") or entry.get("key"))})
    if step == CONSENTS and all(snapshot.get(name) for name in (
            "id", "clientId", "consentType", "resourceId")):
        return Restore(Call.CONSENT, {"id": str(snapshot["id"]),
                                      "body": regrant_body(snapshot)})
    return None


def _unfinished_removals(case: Case) -> list[Step]:
    """The removals journaled by cleanup steps that never finished (their ``partial``
    notes): made all the same, and listed until a finished attempt takes them in. Mailbox
    hygiene's own notes are ``_hygiene_partials``."""
    finished = {step.name for step in _leftover_steps(case)}
    return [note for note in case.steps if note.status is StepStatus.INFO
            and isinstance(note.data.get(PARTIAL), dict) and note.name != HYGIENE
            and note.name not in finished]


def _hygiene_partials(case: Case) -> list[dict[str, Any]]:
    """The rules disabled and forwarding cleared by mailbox hygiene attempts, while no
    attempt has finished (a finished one lists them all)."""
    if case.done(HYGIENE) is not None:
        return []
    return [note.data[PARTIAL] for note in case.steps if note.name == HYGIENE
            and note.status is StepStatus.INFO and isinstance(note.data.get(PARTIAL), dict)]


def _leftover_steps(case: Case) -> list[Step]:
    """The last record of each cleanup step (``service.leftovers``): finished or refused."""
    last: dict[str, Step] = {}
    for step in case.steps:
        if step.status in (StepStatus.DONE, StepStatus.FAILED) and "changes" in step.data:
            last[step.name] = step
    return list(last.values())


def _leftovers(case: Case, done: list[str], not_done: list[str]) -> None:
    """What the cleanup removed, reported or could not remove; before it ran, what the plan
    meant to remove."""
    steps = _leftover_steps(case)
    for note in _unfinished_removals(case):
        if note.data.get(UNSURE) is True:  # its answer was lost: not on record as done
            not_done.append(f"perhaps not removed (the answer was lost, to check): "
                            f"{_named(note.data[PARTIAL])}")
        else:
            done.append(shown(note.detail, NAME_LIMIT * 2))
    for step in steps:
        found = {str(item.get("key")): item for item in step.data.get("found", [])
                 if isinstance(item, dict)}
        done.extend(shown(str(change.get("what") or ""), NAME_LIMIT * 2)
                    for change in step.data.get("changes", []) if isinstance(change, dict))
        for item in found.values():
            if item.get("disposition") == "report":
                not_done.append(f"reported, left in place: {_named(item)}")
        for stayed in step.data.get("stayed", []):
            item = found.get(str(stayed.get("key")), {})
            not_done.append(f"not removed: {_named(item)} "
                            f"({shown(str(stayed.get('why') or ''), NAME_LIMIT * 2)})")
    finished = {step.name for step in steps}
    plan = case.done(PLAN)
    surveys = plan.data.get("leftovers", {}) if plan is not None else {}
    made = {str(note.data[PARTIAL].get("key")) for note in _unfinished_removals(case)}
    for name, found in surveys.items() if isinstance(surveys, dict) else ():
        if name in finished:
            continue
        for item in found if isinstance(found, list) else ():
            if (isinstance(item, dict) and item.get("disposition") == "remove"
                    and str(item.get("key")) not in made):
                not_done.append(f"not removed: {_named(item)}")


def _named(item: dict[str, Any]) -> str:
    return shown(f"{item.get('kind') or ''} {item.get('name') or ''}".strip(), NAME_LIMIT * 2)


def _hygiene(case: Case, done: list[str], not_done: list[str]) -> None:
    step = case.done(HYGIENE)
    if step is None:
        if _started(case, HYGIENE):  # it stops at the first refusal: some may be done
            made = _hygiene_partials(case)
            done.extend(_described(made, "{n} {rules} disabled", "mailbox forwarding cleared"))
            not_done.append("inbox rule and forwarding changes not finished"
                            + (" (the others)" if made else " (some may have been made)"))
            return
        plan = case.done(PLAN)
        findings = _findings(plan.data) if plan is not None else []
        if not findings:
            not_done.append("inbox rules and forwarding not checked")
        not_done.extend(_described(findings, "{n} suspicious {rules} not disabled",
                                   "suspicious mailbox forwarding not cleared"))
        return
    if "mode" not in step.data:
        not_done.append("inbox rules and forwarding not checked (no mailbox access configured)")
        return
    findings = _findings(step.data)
    if not findings:
        done.append("inbox rules and forwarding checked: nothing suspicious")
    elif step.data["mode"] == "report":
        not_done.extend(_described(
            findings, "{n} suspicious {rules} left enabled (MAILBOX_HYGIENE=report)",
            "suspicious mailbox forwarding left in place (MAILBOX_HYGIENE=report)"))
    else:
        done.extend(_described(findings, "{n} {rules} disabled", "mailbox forwarding cleared"))


def _unblock(case: Case, done: list[str], not_done: list[str]) -> None:
    step = case.done(UNBLOCK)
    if step is not None:
        done.append("block removed from the Restricted users list" if step.data.get(
            "listed", True) else "nothing to unblock: not on the Restricted users list")
    elif _unsure(case, UNBLOCK):
        not_done.append(f"block removal {UNCONFIRMED}")
    else:
        plan = case.done(PLAN)
        if plan is None or plan.data.get("listed", True):
            not_done.append("block not removed from the Restricted users list")


def _started(case: Case, name: str) -> bool:
    return any(step.name == name and step.status is StepStatus.STARTED for step in case.steps)


def _unsure(case: Case, name: str) -> bool:
    """Started and not refused: the step's last record is not a permanent failure."""
    records = [step for step in case.steps if step.name == name
               and step.status in (StepStatus.STARTED, StepStatus.FAILED)]
    if not records:
        return False
    last = records[-1]
    return not (last.status is StepStatus.FAILED and last.data.get("permanent"))


def _findings(data: dict[str, Any]) -> list[dict[str, Any]]:
    findings = data.get("findings")
    return [f for f in findings if isinstance(f, dict)] if isinstance(findings, list) else []


def _described(findings: Sequence[dict[str, Any]], rules: str, forwarding: str) -> list[str]:
    """``rules`` (``{n}`` and ``{rules}`` filled in, then the names) and ``forwarding``, for
    what was found."""
    names = [shown(str(f.get("name") or ""), NAME_LIMIT) for f in findings if f.get("rule_id")]
    lines = []
    if names:
        listed = ", ".join(f"“{name}”" for name in names[:NAMES_SHOWN])
        more = f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
        plural = "inbox rules" if len(names) != 1 else "inbox rule"
        lines.append(rules.format(n=len(names), rules=plural) + f": {listed}{more}")
    if any(not f.get("rule_id") for f in findings):
        lines.append(forwarding)
    return lines
