"""The "what was found" part of a case report (``service.case_report``): the block and its
reason, the Defender alerts read back, the account's checks, the plan, inbox rules and
forwarding, sign-in methods, app consents, rules only Exchange shows, and who else can send
as the mailbox (a shared mailbox's delegates, the mailbox permissions).

Each comes from the step that read it: a finished step's own record (what it found, and
what became of each thing: removed, kept, reported), else what the plan meant to do (a
dry-run, or a case that stopped before the step), else nothing ("not read").
"""

from datetime import datetime
from typing import Any

from remediation.domain.cases import Case, Step, StepStatus
from remediation.service.journaling import GUARDRAILS, HYGIENE, LOOKUP, PLAN, UNBLOCK
from remediation.service.leftovers import PARTIAL, WINDOW
from remediation.service.report_model import Item, Note, Section, stamp

# The cleanup steps (service.leftovers kinds) and how the report titles them.
LEFTOVERS = (("signin_methods", "Sign-in methods"), ("consent_grants", "App consents"),
             ("exchange_inbox_rules", "Inbox rules only Exchange shows, and the audit log"))
PERMISSIONS = "mailbox_permissions"
_OUTCOME = {"remove": "to remove", "report": "reported, left in place for a person",
            "keep": "kept"}


def found(case: Case) -> Section:
    """The "What was found" section, in parts."""
    plan = case.done(PLAN)
    parts = [
        Section("block", "The block", tuple(_block(case, plan)),
                none="the Restricted users list was not read for this case"),
        Section("alerts", "Defender alerts", tuple(_alerts(case)), none="no Defender alert"),
        Section("account", "The account and its checks", tuple(_account(case)),
                none="the account was not looked up"),
        Section("plan", "What the robot planned", tuple(
            Item(plain(action)) for action in _list(plan.data.get("actions")))
            if plan is not None else (), none="no plan was made"),
        Section("rules", "Inbox rules and mailbox forwarding", tuple(_rules(case, plan)),
                none=_rules_none(case)),
        *(Section(name, title, tuple(_leftovers(case, plan, name)), none=_none(case, name))
          for name, title in LEFTOVERS),
        Section(PERMISSIONS, "Delegates and mailbox permissions",
                tuple([*_delegates(case), *_leftovers(case, plan, PERMISSIONS)]),
                none=_none(case, PERMISSIONS)),
    ]
    return Section("found", "What was found", parts=tuple(parts))


def plain(value: object) -> str:
    """A journal value as text ('' for None)."""
    return "" if value is None else str(value)


def when(value: object) -> datetime | None:
    """A journal value that holds an ISO 8601 time, else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _block(case: Case, plan: Step | None) -> list[Item]:
    listed: dict[str, Item] = {}
    for step in case.steps:
        if step.name == UNBLOCK and step.status is StepStatus.INFO:
            listed[plain(step.data.get("address"))] = Item(step.detail, step.at)
    items = list(listed.values())
    unblock = case.done(UNBLOCK)
    if not items and unblock is not None and unblock.data.get("block_reason"):
        items.append(Item(f"Exchange's reason for the block: {unblock.data['block_reason']}",
                          unblock.at))
    if not items and plan is not None:
        addresses = ", ".join(plain(a) for a in _list(plan.data.get("listed_addresses")))
        items.append(Item(f"listed on the Restricted users list as {addresses}"
                          if plan.data.get("listed", True) and addresses
                          else "not on the Restricted users list", plan.at))
    elif not items and case.listed_addresses:
        items.append(Item("named as blocked by the request: "
                          + ", ".join(case.listed_addresses), case.created_at))
    window = case.done(WINDOW)
    if window is not None:
        items.append(Item(f"compromise window: {window.detail}", window.at))
    return items


def _alerts(case: Case) -> list[Item]:
    items = []
    read = set()
    for step in case.steps:
        if step.name in ("alert_confirmed", "alert_ignored"):
            read.add(plain(step.data.get("alert_id")))
            first = when(step.data.get("first_activity"))
            items.append(Item(step.detail, step.at, (Note("first_activity", stamp(first)),)
                              if first is not None else ()))
    items += [Item(f"alert {alert_id}: named by the request", case.created_at)
              for alert_id in case.alert_ids if alert_id not in read]
    return items


def _account(case: Case) -> list[Item]:
    items = []
    for step in case.steps:
        if step.name == LOOKUP and step.status is not StepStatus.STARTED:
            items.append(Item(step.detail, step.at, _account_notes(step.data)))
        elif step.name == GUARDRAILS and step.status is not StepStatus.STARTED:
            roles = ", ".join(plain(role) for role in _list(step.data.get("roles")))
            items.append(Item(f"guardrails: {step.detail}", step.at,
                              (Note("roles", roles),) if roles else ()))
    return items


def _account_notes(data: dict[str, Any]) -> tuple[Note, ...]:
    notes = []
    if data.get("user_id"):
        notes.append(Note("object_id", plain(data["user_id"])))
    if "enabled" in data:
        notes.append(Note("sign_in", "enabled" if data["enabled"] else "disabled"))
    if data.get("user_type"):
        notes.append(Note("user_type", plain(data["user_type"])))
    if data.get("synced"):
        notes.append(Note("synced", "from on-premises AD"))
    return tuple(notes)


def _rules(case: Case, plan: Step | None) -> list[Item]:
    """What mailbox hygiene found: its finished record, else the rules it changed before it
    stopped, else what the plan meant to change."""
    hygiene = case.done(HYGIENE)
    if hygiene is not None:
        outcome = ("reported, left in place (MAILBOX_HYGIENE=report)"
                   if hygiene.data.get("mode") == "report" else "disabled or cleared")
        return [_finding(finding, outcome) for finding in _dicts(hygiene.data.get("findings"))]
    partial = [step for step in case.steps if step.name == HYGIENE
               and isinstance(step.data.get(PARTIAL), dict)]
    if partial:
        return [_finding(step.data[PARTIAL], "disabled or cleared") for step in partial]
    if plan is None:
        return []
    return [_finding(finding, "planned: disable or clear")
            for finding in _dicts(plan.data.get("findings"))]


def _rules_none(case: Case) -> str:
    hygiene = case.done(HYGIENE)
    if hygiene is not None and "mode" not in hygiene.data:
        return "not read: no mailbox access configured"
    return "nothing suspicious" if hygiene is not None or case.done(PLAN) else "not read"


def _finding(finding: dict[str, Any], outcome: str) -> Item:
    return Item(plain(finding.get("name")) or "mailbox forwarding", None,
                (Note("why", plain(finding.get("why"))), Note("outcome", outcome)))


def _dicts(value: object) -> list[dict[str, Any]]:
    return [entry for entry in _list(value) if isinstance(entry, dict)]


def _leftovers(case: Case, plan: Step | None, name: str) -> list[Item]:
    """What cleanup step ``name`` found, each with what became of it."""
    record = _finished(case, name)
    if record is not None:
        removed = {plain(key) for key in _list(record.data.get("removed"))}
        stayed = {plain(entry.get("key")): plain(entry.get("why"))
                  for entry in _dicts(record.data.get("stayed"))}
        return [_leftover(entry, _outcome(entry, removed, stayed))
                for entry in _dicts(record.data.get("found"))]
    made = [step for step in case.steps if step.name == name
            and isinstance(step.data.get(PARTIAL), dict)]
    items = [_leftover(step.data[PARTIAL], "removed") for step in made]
    surveys = plan.data.get("leftovers") if plan is not None else None
    if plan is not None and isinstance(surveys, dict):
        done = {plain(step.data[PARTIAL].get("key")) for step in made}
        items += [_leftover(entry, f"planned: {_OUTCOME.get(plain(entry.get('disposition')))}")
                  for entry in _dicts(surveys.get(name))
                  if plain(entry.get("key")) not in done]
    return items


def _finished(case: Case, name: str) -> Step | None:
    """The last finished record of a cleanup step (done, or failed with what it found)."""
    return next((step for step in reversed(case.steps) if step.name == name
                 and step.status in (StepStatus.DONE, StepStatus.FAILED)
                 and "found" in step.data), None)


def _outcome(entry: dict[str, Any], removed: set[str], stayed: dict[str, str]) -> str:
    key = plain(entry.get("key"))
    if key in removed:
        return "removed"
    if key in stayed:
        return f"not removed: {stayed[key]}"
    return _OUTCOME.get(plain(entry.get("disposition")), plain(entry.get("disposition")))


def _leftover(entry: dict[str, Any], outcome: str) -> Item:
    notes = [Note("kind", plain(entry.get("kind"))), Note("outcome", outcome),
             Note("why", plain(entry.get("why")))]
    added = when(entry.get("added"))
    if added is not None:
        notes.append(Note("added", f"{stamp(added)} ({plain(entry.get('added_from'))})"))
    return Item(plain(entry.get("name")), None, tuple(notes))


def _delegates(case: Case) -> list[Item]:
    """A shared mailbox's delegates (the guardrails' read) and the cases opened for them."""
    items = []
    guardrails = case.done(GUARDRAILS)
    mailbox = guardrails.data.get("mailbox") if guardrails is not None else None
    if guardrails is not None and isinstance(mailbox, dict):
        for delegate in _dicts(mailbox.get("delegates")):
            rights = ", ".join(plain(right) for right in _list(delegate.get("rights")))
            items.append(Item(plain(delegate.get("name")), guardrails.at, (
                Note("kind", f"delegate of the {plain(mailbox.get('kind')) or 'shared'} "
                             "mailbox"), Note("rights", rights))))
    opened = case.done("delegate_cases")
    if opened is not None:
        items += [Item(f"a case of its own opened for {plain(entry.get('user'))}", opened.at,
                       (Note("rights", plain(entry.get("rights"))),
                        Note("alert", plain(entry.get("alert_id")))))
                  for entry in _dicts(opened.data.get("opened"))]
    return items


def _none(case: Case, name: str) -> str:
    if _finished(case, name) is not None:
        return "nothing found"
    return "not read: the case stopped before this step" if case.done(PLAN) else "not read"
