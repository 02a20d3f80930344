"""When a case's trouble was first seen: one rule for the telemetry's histograms
(``service.telemetry``) and the reports (``case_report``, ``period_report``).

Only times a Microsoft service gave count: the block's listing time (Exchange's
``CreatedDatetime``: ``Case.block_created``, and the ``block_created`` the ``unblock`` step
read for each address it unblocked), the first activity of each Defender alert Graph
confirmed for the case (``alert_confirmed`` steps, read back: ``firstActivityDateTime``, else
``createdDateTime``) and the start of the compromise window the plan took from those same
signs (``compromise_window``). A time a queue message claims (a request's ``evidence_at``) is
never one: the workflow does not believe it either (``claims``). With none, the case's
opening (``Case.created_at``).
"""

from datetime import datetime

from remediation.domain.cases import Case, StepStatus
from remediation.service.case_findings import when
from remediation.service.claims import CONFIRMED
from remediation.service.journaling import UNBLOCK
from remediation.service.leftovers import WINDOW

BLOCKED, ALERTED, OPENED = "blocked", "first Defender alert", "case opened"


def first_signal(case: Case) -> tuple[datetime, str]:
    """The earliest confirmed sign of the case's trouble and what it was (``BLOCKED``,
    ``ALERTED``), else when the case opened (``OPENED``)."""
    signs: list[tuple[datetime, str]] = []
    if case.block_created is not None:
        signs.append((case.block_created, BLOCKED))
    for step in case.steps:
        data = step.data
        at: datetime | None = None
        if step.name == UNBLOCK:
            at, what = when(data.get("block_created")), BLOCKED
        elif step.name == CONFIRMED and data.get("alert_id") in case.alert_ids:
            at, what = when(data.get("first_activity")), ALERTED
        elif step.name == WINDOW and step.status is StepStatus.DONE:
            dated = [str(sign) for sign in data.get("signs") or ()
                     if not str(sign).startswith("no dated sign")]
            if dated:  # the window's signs, earliest first: "block of ...", "alert ..."
                at = when(data.get("trouble_started"))
                what = BLOCKED if dated[0].startswith("block") else ALERTED
        if at is not None:
            signs.append((at, what))
    return min(signs, key=lambda sign: sign[0]) if signs else (case.created_at, OPENED)
