"""Accounts the robot must not reset, and why: decided before any change is made."""

from dataclasses import dataclass, field
from enum import StrEnum

from remediation.domain.delegates import MailboxFacts
from remediation.domain.directory import DirectoryUser


@dataclass(frozen=True)
class Memberships:
    """Transitive groups and every directory role an account holds or may activate.

    ``roles``: one description per role and way of holding it, e.g. ``Global Administrator``,
    ``Helpdesk Administrator, scoped to an administrative unit (id)``, ``custom role <id>``,
    ``User Administrator, eligible (PIM), through group Tier-0 admins``
    (``remediation.domain.roles.RoleHolding.describe``). ``pim_data``: False when the tenant
    could not say which roles are PIM-eligible (no Entra ID P2): no eligibility is known.
    ``group_access``: (group id, how) for each protected group the account can reach other
    than as an active member, e.g. ``owner``, ``eligible member (PIM for Groups)``,
    ``eligible member (PIM for Groups) of group <id>, nested in it``: an owner may add itself
    as a member, an eligible member may activate at will.
    """

    group_ids: frozenset[str] = frozenset()
    roles: tuple[str, ...] = ()
    pim_data: bool = True
    group_access: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TenantDomains:
    names: frozenset[str] = frozenset()
    federated: frozenset[str] = frozenset()


class Verdict(StrEnum):
    PROCEED = "proceed"
    ESCALATE = "escalate"
    SKIP = "skip"
    REVOKE_THEN_ESCALATE = "revoke_then_escalate"


@dataclass(frozen=True)
class Guardrail:
    verdict: Verdict
    reason: str = ""
    facts: dict[str, object] = field(default_factory=dict)


def judge(user: DirectoryUser, memberships: Memberships, domains: TenantDomains,
          protected_group_ids: frozenset[str],
          mailbox: MailboxFacts | None = None) -> Guardrail:
    """The first rule that applies wins; an account that passes them all may be reset.

    ``mailbox``: what Exchange says of a disabled account's mailbox (read only for disabled
    accounts). A disabled account is never skipped: a shared (room, equipment) mailbox
    escalates naming who can use it; any other escalates as disabled, never re-enabled."""
    facts: dict[str, object] = {"user_type": user.user_type, "enabled": user.account_enabled,
                                "synced": bool(user.on_premises_sync_enabled),
                                "roles": list(memberships.roles)}
    if user.creation_type:
        facts["creation_type"] = user.creation_type
    if not memberships.pim_data:
        facts["pim"] = "no PIM data (the tenant has no Entra ID P2)"
    protected = sorted(memberships.group_ids & protected_group_ids)
    reached = [f"{how} of protected group {group_id}"
               for group_id, how in memberships.group_access if group_id in protected_group_ids]
    if protected or reached:
        held = ([f"member of protected group(s) {', '.join(protected)}"] if protected else [])
        facts["protected_access"] = held + reached
        return Guardrail(Verdict.ESCALATE, f"{'; '.join(held + reached)}: never changed "
                         "automatically", facts)
    if memberships.roles:
        return Guardrail(Verdict.ESCALATE, "holds directory role(s) "
                         f"{'; '.join(memberships.roles)}: the robot never resets an "
                         "administrator (Graph would let it reset some); secure this account "
                         "by hand", facts)
    if (user.user_type or "").lower() == "guest":
        return Guardrail(Verdict.ESCALATE, "guest account: its password lives in its home "
                         "tenant; remove its access or ask the home tenant to secure it", facts)
    external = user.external_reason
    if external is not None:
        return Guardrail(Verdict.ESCALATE, f"external account ({external}), though a member: "
                         "its password lives with its home organisation or identity provider; "
                         "remove its access or ask them to secure it", facts)
    if user.account_enabled is False:
        return _disabled(user, mailbox, facts)
    domain = user.user_principal_name.rsplit("@", 1)[-1].lower()
    if user.on_premises_sync_enabled or domain in domains.federated:
        source = "synced from on-premises AD" if user.on_premises_sync_enabled else (
            f"federated ({domain})")
        # Said before anything is done (and in dry-run, when nothing is): the escalation
        # says the sessions were revoked once they were.
        return Guardrail(Verdict.REVOKE_THEN_ESCALATE, f"account is {source}: reset the "
                         "password on-premises, then unblock", facts)
    return Guardrail(Verdict.PROCEED, "", facts)


_KINDS = {"sharedmailbox": "shared mailbox", "roommailbox": "room mailbox",
          "equipmentmailbox": "equipment mailbox"}


def _disabled(user: DirectoryUser, mailbox: MailboxFacts | None,
              facts: dict[str, object]) -> Guardrail:
    """A disabled account: a mailbox nobody signs in to was used by someone who may, and
    an account disabled by a person or by Defender's attack disruption stays as it is
    (defender-docs automatic-attack-disruption.md: automation that re-enables accounts can
    undo a disruption)."""
    facts["disabled"] = True
    if mailbox is not None:
        facts["mailbox"] = {"kind": mailbox.kind, "unowned": mailbox.unowned,
                            "delegates": [{"name": d.name, "rights": list(d.rights)}
                                          for d in mailbox.delegates],
                            "unreadable": mailbox.unreadable}
    if mailbox is not None and mailbox.unowned:
        kind = _KINDS.get((mailbox.kind or "").lower(), mailbox.kind or "mailbox")
        head = (f"{kind} ({mailbox.kind}; its account is disabled: nobody signs in as it), so "
                "the mail was sent through an account that may use it")
        if mailbox.delegates:
            who = "; ".join(delegate.describe() for delegate in mailbox.delegates)
            advice = (f"secure the accounts that can send as it or open it: {who}. Its "
                      "password was not reset and its block stays: remove the block once "
                      "they are secured")
        else:
            advice = ("no account holds FullAccess, SendAs or SendOnBehalf on it: the mail "
                      "came from an application, a connector or an administrator; find it "
                      "before removing the block. Its password was not reset and its block "
                      "stays")
        return Guardrail(Verdict.ESCALATE, f"{head}: {advice}", facts)
    unread = (f" (whether its mailbox is shared could not be read: {mailbox.unreadable})"
              if mailbox is not None and mailbox.unreadable else "")
    return Guardrail(Verdict.ESCALATE, (
        f"account is disabled{unread}: by an administrator, or by Defender's automatic "
        "attack disruption, which disables a compromised account to contain it. Nobody can "
        "sign in as it. The robot will never re-enable an account or undo a containment: "
        "its password was not reset and its block stays. Find out who disabled it and why; "
        "once a person has secured and re-enabled it, remove the block (or run `remediation "
        f"enqueue --user {user.sender_address} --force`)"), facts)
