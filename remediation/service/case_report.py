"""``remediation report CASE_ID``: what one case found, changed, verified and left for a
person, read from its journal alone (the tenant is never asked).

The report is for whoever asks after the fact (the account's owner, their manager, an
auditor, a ticket). It states what the journal says and no more: a change is listed when its
step is journaled done (``service.progress``, the same record ``status --user`` and
``remediation undo`` read), a check when it is journaled, a decision with who made it.

Sections, in order: what started the case; what was found (the block, the Defender alerts,
the account's checks, the plan, inbox rules and forwarding, sign-in methods, app consents,
rules only Exchange shows, delegates and mailbox permissions); every change with its time
and how to undo it; what was verified and when; what is left for a person and why (the
escalation's kind and the README's "what to do" for it, ``domain.escalation_advice``);
decisions; pauses; undos; the Defender alerts' final state; then every journal step.
"""

from datetime import datetime

from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.domain.decisions import refused_by_a_person
from remediation.domain.escalation_advice import FORCE, advice_for
from remediation.domain.undo import (
    ITEM_PREFIX,
    UNDO_FINISHED,
    UNDO_NOT_QUEUED,
    UNDO_QUEUED,
    UNDO_REFUSED,
)
from remediation.logsafety import redact, redacted_data
from remediation.service.case_findings import found, plain, when
from remediation.service.episodes import NEW_EPISODE
from remediation.service.first_signal import first_signal
from remediation.service.journaling import HYGIENE, LOOKUP, SCHEDULE
from remediation.service.leftovers import PARTIAL
from remediation.service.pausing import PAUSED
from remediation.service.progress import BLOCK_SIGN_IN, Made, made_changes, progress
from remediation.service.report_model import CaseReport, Fact, Item, Note, Section, redacted
from remediation.service.report_model import stamp as _stamp
from remediation.service.workflow import APPROVAL_REFUSED, APPROVED

_REQUESTS = ("received", "merged", NEW_EPISODE)
_DECISIONS = ("awaiting_approval", "approval_queued", APPROVED, APPROVAL_REFUSED,
              "reject_refused", "close_refused", "closed")
_UNDOS = (UNDO_QUEUED, UNDO_NOT_QUEUED, UNDO_FINISHED, UNDO_REFUSED)
_SOURCES = {"manual": "a manual request", "alert": "a Defender alert",
            "restricted-list": "the Restricted users list sweep",
            "shared-mailbox": "a shared mailbox's case (its delegate)"}
_STATES = {
    CaseState.RECEIVED: "received, not yet worked on",
    CaseState.IN_PROGRESS: "in progress",
    CaseState.AWAITING_APPROVAL: "waiting for a person's approval",
    CaseState.AWAITING_VERIFICATION: "secured and unblocked, waiting for its checks",
    CaseState.VERIFIED: "verified: secured, unblocked, and no longer blocked at a check",
    CaseState.ESCALATED: "escalated: handed to a person",
    CaseState.SKIPPED: "skipped: nothing to do",
    CaseState.REJECTED: "rejected",
    CaseState.PLANNED: "planned (dry-run): nothing was changed in the tenant",
    CaseState.CLOSED: "closed: an escalation a person handled",
}


def case_report(case: Case, now: datetime) -> CaseReport:
    """The report of ``case`` as its journal has it, made at ``now``."""
    sections = (
        Section("trigger", "What started the case", tuple(_trigger(case))),
        found(case),
        Section("changes", "What was changed, and how to undo it", tuple(_changes(case)),
                none="nothing was changed in the tenant"
                + (" (dry-run)" if case.state is CaseState.PLANNED else "")),
        Section("verification", "What was verified, and when", tuple(_verification(case)),
                none="no check was made"),
        Section("left", "What is left for a person", tuple(_left(case)),
                none="nothing: the case is verified"),
        Section("decisions", "Decisions", tuple(_decisions(case)),
                none="no person approved, rejected or closed this case"),
        Section("pauses", "Pauses (the kill switch)", tuple(_named(case, (PAUSED,))),
                none="no pause held this case"),
        Section("undos", "Undo", tuple(_undos(case)), none="nothing was undone"),
        Section("alerts", "Defender alerts: their final state", tuple(_alerts(case)),
                none="no Defender alert"),
        Section("journal", "Every journal step", tuple(
            Item(f"{step.name} ({step.status.value})" + (f": {step.detail}" if step.detail
                                                         else ""), step.at)
            for step in case.steps), none="no step journaled"),
    )
    return CaseReport(case.case_id, now, tuple(Fact(redact(f.label), redact(f.value))
                                               for f in _facts(case, now)),
                      tuple(redacted(section) for section in sections),
                      redacted_data(case.to_dict()))


def _facts(case: Case, now: datetime) -> list[Fact]:
    facts = [Fact("Case", case.case_id), Fact("Account", case.user)]
    if case.user_id:
        facts.append(Fact("Object id", case.user_id))
    if case.sender and case.sender != case.user:
        facts.append(Fact("Primary address", case.sender))
    if case.listed_addresses:
        facts.append(Fact("Listed as", ", ".join(case.listed_addresses)))
    others = [name for name in case.aliases if name not in (case.user, case.sender)]
    if others:
        facts.append(Fact("Other names", ", ".join(others)))
    facts.append(Fact("Started by", _SOURCES.get(case.source, case.source) + (
        f" (requested by {case.requested_by})" if case.requested_by else "")))
    facts.append(Fact("State", _STATES.get(case.state, case.state.value)))
    if case.reason:
        facts.append(Fact("Reason", case.reason))
    if case.escalation_kind:
        facts.append(Fact("Escalation kind", case.escalation_kind))
    if case.decided_by:
        facts.append(Fact("Decided by", case.decided_by))
    signal, what = first_signal(case)
    facts += [Fact("First signal", f"{_stamp(signal)} ({what})"),
              Fact("Opened", _stamp(case.created_at))]
    if case.ended_at:
        facts.append(Fact("Ended", _stamp(case.ended_at)))
    facts.append(Fact("Report made", _stamp(now)))
    return facts


def _trigger(case: Case) -> list[Item]:
    items = []
    for step in case.steps:
        if step.name == "received":
            items.append(Item(_request(case, step), step.at, _request_notes(step)))
        elif step.name in _REQUESTS:
            items.append(Item(step.detail, step.at, _request_notes(step)))
    return items or [Item(f"a {case.source} request", case.created_at)]


def _request(case: Case, step: Step) -> str:
    source = plain(step.data.get("source")) or case.source
    reason = plain(step.data.get("reason"))
    by = plain(step.data.get("requested_by"))
    if source == "manual":
        return f"a manual request by {by or 'someone unnamed'}" + (f": {reason}" if reason
                                                                   else "")
    if source == "restricted-list":
        return f"the Restricted users list sweep: {reason or 'a block no case owned'}"
    if source == "alert":
        return f"a Defender alert: {reason.removeprefix('Defender alert: ') or 'not named'}"
    if source == "shared-mailbox":
        return f"a shared mailbox's case: {reason}"
    return f"a {source} request" + (f": {reason}" if reason else "")


def _request_notes(step: Step) -> tuple[Note, ...]:
    notes = []
    alerts = step.data.get("alert_ids")
    if isinstance(alerts, list) and alerts:
        notes.append(Note("alerts", ", ".join(str(alert) for alert in alerts)))
    evidence = when(step.data.get("evidence_at"))
    if evidence is not None:
        notes.append(Note("evidence_created", _stamp(evidence)))
    if step.data.get("force"):
        notes.append(Note("forced", "yes: a person insisted (--force)"))
    if step.name != "received" and step.data.get("reason"):
        notes.append(Note("reason", plain(step.data.get("reason"))))
    return tuple(notes)


def _changes(case: Case) -> list[Item]:
    whole = _whole(case)
    items = []
    for made in made_changes(case):
        what, undo = whole.get((made.step, made.key), (made.what, made.undo))
        if made.undo.startswith(("restored by undo", "undo could not")):
            undo = made.undo  # what became of it says more than how it could be undone
        items.append(Item(what, _made_at(case, made), (Note("undo", undo),
                                                       Note("step", made.step))))
    return items


def _whole(case: Case) -> dict[tuple[str, str], tuple[str, str]]:
    """The cleanup steps' changes as journaled, uncut (``progress`` cuts them for cards):
    by (step, key), what was done and how to undo it. A consent's undo holds the Graph body
    that grants it again."""
    whole: dict[tuple[str, str], tuple[str, str]] = {}
    for step in case.steps:
        changes = step.data.get("changes")
        keys = step.data.get("removed")
        if step.status not in (StepStatus.DONE, StepStatus.FAILED) or not (
                isinstance(changes, list) and isinstance(keys, list)
                and len(changes) == len(keys)):
            continue
        for key, change in zip(keys, changes, strict=True):
            if isinstance(change, dict) and change.get("what"):
                whole[(step.name, str(key))] = (plain(change.get("what")),
                                                plain(change.get("undo")) or "-")
    for note in case.steps:
        partial = note.data.get(PARTIAL)
        if isinstance(partial, dict) and partial.get("key") and partial.get("undo"):
            whole.setdefault((note.name, str(partial["key"])),
                             (note.detail, plain(partial.get("undo"))))
    return whole


def _made_at(case: Case, made: Made) -> datetime | None:
    """When ``made`` was made: its own note (a removal journaled as it was done), else its
    step's ``done`` record."""
    for step in case.steps:
        partial = step.data.get(PARTIAL) if step.name == made.step else None
        if isinstance(partial, dict) and made.key in (
                str(partial.get("key")), str(partial.get("rule_id")),
                "forwarding" if step.name == HYGIENE and not partial.get("rule_id") else ""):
            return step.at
    done = case.done(made.step)
    return done.at if done is not None else None


def _verification(case: Case) -> list[Item]:
    items = []
    for step in case.steps:
        checks = step.name.startswith(("verify_", "returned_")) or step.name in (
            SCHEDULE, BLOCK_SIGN_IN, "verification_refused")
        if checks and step.status is not StepStatus.STARTED:
            items.append(Item(step.detail or f"{step.name} {step.status.value}", step.at))
    if case.state is CaseState.VERIFIED:
        items.append(Item("verified: the block is gone and nothing was added since the "
                          "case acted", case.ended_at))
    return items


def _left(case: Case) -> list[Item]:
    items: list[Item] = []
    if case.state is CaseState.ESCALATED:
        items.append(_escalation(case))
    elif case.state is CaseState.CLOSED:
        items.append(Item(f"nothing: {case.reason or 'closed by a person'}", case.ended_at,
                          (Note("escalated_as", case.escalation_kind or "unknown"),)))
    elif refused_by_a_person(case):
        items.append(Item(
            f"{case.reason or 'rejected by a person'}: nothing was changed in the tenant; "
            "the block it was about stays with a person (a plain request is recorded on "
            "this case and changes nothing; a forced one opens the next episode)",
            case.ended_at))
    elif case.state in (CaseState.REJECTED, CaseState.SKIPPED):
        items.append(Item(f"nothing: the request was {case.state.value}: "
                          f"{case.reason or 'no reason recorded'}", case.ended_at))
    elif case.state is CaseState.PLANNED:
        items.append(Item("everything: a dry-run (REMEDIATION_MODE=dry-run) changes nothing; "
                          "the plan above is what enforce mode would do", case.ended_at))
    elif not case.state.is_final:
        items.append(Item(f"the case is still {_STATES[case.state]}", case.updated_at))
    if case.done(LOOKUP) is not None and case.state not in (CaseState.SKIPPED,
                                                            CaseState.CLOSED):
        items += [Item(line) for line in progress(case).not_done]
    return items


def _escalation(case: Case) -> Item:
    kind = case.escalation_kind or next(
        (plain(s.data.get("kind")) for s in reversed(case.steps) if s.name == "escalated"), "")
    notes = [Note("kind", kind or "not recorded")]
    advice = advice_for(kind, case.reason) if kind else None
    if advice is not None:
        notes.append(Note("what_to_do", advice.what_to_do, ours=True))
        if "`--force" in advice.what_to_do:
            notes.append(Note("force", FORCE, ours=True))
    return Item(f"escalated: {case.reason or 'no reason recorded'}", case.ended_at,
                tuple(notes))


def _decisions(case: Case) -> list[Item]:
    names = (*_DECISIONS, "rejected") if case.decided_by else _DECISIONS
    items = [Item(_decision(step), step.at) for step in case.steps if step.name in names]
    if case.escalation_kind == "approval_expired":
        items.append(Item(f"nobody decided in time: {case.reason}", case.ended_at))
    return items


def _decision(step: Step) -> str:
    if step.name == "awaiting_approval":
        return f"waiting for a person's approval: {step.detail}"
    if step.detail.startswith("by "):  # "rejected" / "closed": "by NAME: WHY"
        return f"{step.name} {step.detail}"
    return step.detail or step.name


def _undos(case: Case) -> list[Item]:
    return [Item(step.detail or step.name, step.at) for step in case.steps
            if step.name in _UNDOS or (step.name.startswith(ITEM_PREFIX)
                                       and step.status is not StepStatus.STARTED)]


def _named(case: Case, names: tuple[str, ...]) -> list[Item]:
    return [Item(step.detail or step.name, step.at) for step in case.steps
            if step.name in names]


def _alerts(case: Case) -> list[Item]:
    ignored = {plain(s.data.get("alert_id")): s for s in case.steps if s.name == "alert_ignored"}
    items = []
    for alert_id in dict.fromkeys([*case.alert_ids, *ignored]):
        if alert_id in ignored:
            items.append(Item(f"alert {alert_id}: not this case's to update: "
                              f"{ignored[alert_id].detail}", ignored[alert_id].at))
            continue
        updates = [s for s in case.steps if s.name.startswith("alert_status:")
                   and s.name.endswith(f":{alert_id}") and s.status is StepStatus.DONE]
        comments = [s for s in case.steps if s.name.startswith("alert_comment:")
                    and s.name.endswith(f":{alert_id}") and s.status is StepStatus.DONE]
        failed = [s for s in case.steps if s.name.startswith(("alert_status:", "alert_comment:"))
                  and s.name.endswith(f":{alert_id}") and s.status is StepStatus.FAILED]
        text = (updates[-1].detail if updates else
                f"alert {alert_id}: its status was not changed by the robot")
        notes = [Note("comments", f"{len(comments)} comment(s) by the robot")]
        if failed:
            notes.append(Note("failed", failed[-1].detail))
        last = max((s.at for s in (*updates, *comments)), default=None)
        items.append(Item(text, last, tuple(notes)))
    return items
