"""Triage of rate-limit blocks: a block over the recipient rate limit, or one Exchange marks
``TemporaryBlock``, is not by itself evidence of a takeover (domain/rate_limits.py).

When every address of the account that is listed carries such a block and no compromise
alert the case holds names the account (``domain.alerts.is_compromise_alert``: any
outbound-spam alert but "User restricted from sending email" and "Email sending limit
exceeded", which only report the block and its volume), ``RATE_LIMIT_BLOCKS`` decides:
``escalate`` (explain the block, change nothing), ``approve`` (wait for a person whatever
``REMEDIATION_MODE`` is) or ``remediate`` (like any other block). A manual request with
``--force`` is a person insisting: never held.
"""

from typing import Any

from remediation.domain.alerts import is_compromise_alert, names_account, parse_alert
from remediation.domain.blocks import BlockedSender
from remediation.domain.cases import Case
from remediation.domain.directory import DirectoryUser
from remediation.domain.errors import InvalidRequest, PermanentError
from remediation.domain.rate_limits import RateLimitBlock, is_rate_limit
from remediation.service.claims import AlertClaims


async def rate_limit_hold(case: Case, user: DirectoryUser,
                          listed: dict[str, BlockedSender], setting: str,
                          claims: AlertClaims) -> dict[str, Any] | None:
    """The plan's data on a rate-limit block the setting holds back (``action`` escalate or
    approve, ``blocks`` described, ``reason`` for a person), or None when the block is
    remediated as usual. ``listed``: each listed address's newest entry. Reads each of the
    case's alerts from Graph (TransientError propagates: the plan is tried again)."""
    if setting == "remediate" or not listed or (case.force and case.source == "manual"):
        return None
    if not all(is_rate_limit(block) for block in listed.values()):
        return None
    if await _compromise_alerts(case, user, claims):
        return None
    blocks = [RateLimitBlock(address, block) for address, block in listed.items()]
    shown = "; ".join(block.describe() for block in blocks)
    since = min((b.block.created for b in blocks if b.block.created), default=None)
    when = f", blocked since {since:%Y-%m-%d %H:%M:%S} UTC" if since else ""
    alerts = (f" (its {len(case.alert_ids)} alert(s) only report the block or its volume)"
              if case.alert_ids else "")
    head = (f"rate-limit block, not by itself evidence of a takeover "
            f"(RATE_LIMIT_BLOCKS={setting}): {shown}{when}; it releases itself within 24 "
            f"hours, and no compromise alert names the account{alerts}")
    if setting == "escalate":
        reason = (f"{head}: nothing was changed in the tenant; if the account may be "
                  "compromised, secure it: remediation enqueue --user "
                  f"{user.sender_address} --force")
    else:
        reason = f"{head}: it waits for a person's approval to be secured and unblocked"
    return {"action": setting, "blocks": [b.describe() for b in blocks], "reason": reason}


async def _compromise_alerts(case: Case, user: DirectoryUser, claims: AlertClaims) -> list[str]:
    """The case's alerts that are compromise alerts naming ``user``."""
    found = []
    for alert_id in case.alert_ids:
        try:
            raw = await claims.read(alert_id)
        except PermanentError:  # refused or no source: no evidence either way
            continue
        if raw is None:
            continue
        try:
            alert = parse_alert(raw)
        except InvalidRequest:
            continue
        if is_compromise_alert(alert) and names_account(alert, user):
            found.append(alert_id)
    return found
