"""What ``remediation doctor`` says about two settings an operator would regret, as warnings
(``WARN``: worth a decision before switching on; never a failure of the preflight):

- no protected group (``PROTECTED_GROUP_IDS`` empty): holders of a directory role, active or
  eligible, are still escalated untouched (the guardrails), but an account that holds no role
  (a break-glass account kept role-less, an executive, a service account) has no protection;
- ``REMEDIATION_MODE=enforce`` on a first run: no case in the journal was ever planned
  (``planned_before``: none planned in dry-run, none that acted, none whose plan a person
  saw), so the first blocked account would be changed before anyone has seen what the
  robot plans. A case that ended before any plan (a request refused at the door as
  ``rejected``, an account escalated before its plan) ends no first run.
"""

from collections.abc import Collection

from remediation.domain.cases import CaseState
from remediation.service.doctor import Finding, Report, Status
from remediation.service.journaling import PLAN
from remediation.service.ports import Journal

PROTECTED_GROUPS = "protected groups"
MODE = "mode"
# The states only a plan leads to: planned in dry-run, acted on (its checks to come, or
# verified). A case in any other state was planned only if its ``plan`` step is done.
PLANNED_STATES = (CaseState.PLANNED, CaseState.AWAITING_VERIFICATION, CaseState.VERIFIED)
# How many of the newest cases are read for a ``plan`` step when none is in PLANNED_STATES.
NEWEST = 50


async def with_settings_findings(report: Report, protected_group_ids: Collection[str],
                                 mode: str, journal: Journal | None) -> Report:
    """``report`` and the settings' lines: the protected groups, and for ``enforce`` whether
    this is a first run. ``journal`` None: there is none yet (a first run by definition)."""
    findings = [_protected_groups(len(protected_group_ids))]
    if mode == "enforce":
        findings.append(await _enforce(journal))
    return Report((*report.findings, *findings))


def _protected_groups(count: int) -> Finding:
    if count:
        return Finding(PROTECTED_GROUPS, Status.OK,
                       f"{count} group{'s' if count > 1 else ''} in PROTECTED_GROUP_IDS: whoever "
                       "is or can make themselves a member is escalated, never changed")
    return Finding(
        PROTECTED_GROUPS, Status.WARN,
        "none (PROTECTED_GROUP_IDS is empty): accounts holding a directory role, active or "
        "eligible, are still escalated untouched, but break-glass accounts, executives and "
        "service accounts that hold no role are not protected",
        "list their groups' object ids in PROTECTED_GROUP_IDS, comma-separated (in Azure: "
        "azd env set AZURE_PROTECTED_GROUP_IDS <id>,<id>, then azd up: the value "
        "infra/main.parameters.json reads)")


async def _enforce(journal: Journal | None) -> Finding:
    try:
        finished = journal is not None and await planned_before(journal)
    except Exception as error:  # the journal's own line says why; the table must finish
        return Finding(MODE, Status.WARN, "enforce, and whether any case has been planned "
                       f"could not be read ({type(error).__name__}): this may be a first run",
                       _START_SAFELY)
    if finished:
        return Finding(MODE, Status.OK, "enforce: changes accounts without asking; cases have "
                       "been planned before (remediation status shows them)")
    return Finding(MODE, Status.WARN, "enforce on a first run: no case has been planned yet "
                   "(a request refused at the door plans nothing), so the first blocked "
                   "account will be changed before anyone has seen a plan", _START_SAFELY)


async def planned_before(journal: Journal) -> bool:
    """Has the robot ever planned a case in this journal: one in ``PLANNED_STATES``, or one
    of the ``NEWEST`` cases with its ``plan`` step done (escalated after its plan, rejected
    or approved by a person who saw it)? Two reads. Raises what the journal raises."""
    if await journal.list_cases(states=PLANNED_STATES, limit=1):
        return True
    return any(case.done(PLAN) is not None
               for case in await journal.list_cases(limit=NEWEST))


_START_SAFELY = ("start with REMEDIATION_MODE=dry-run (plans, changes nothing) or approve (a "
                 "person approves each case), read the first cases with `remediation status`, "
                 "then switch to enforce")
