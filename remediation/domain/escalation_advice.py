"""What a person does about each kind of escalation: the README's "When a case escalates"
table, "what to do" column, row by row, for the places that tell a person without the README
at hand (``remediation report``).

The text is the README's own (Markdown: `code` spans and *emphasis*), and a unit test keeps
the two equal, row for row (tests/unit/test_case_report_advice.py): a row changed in one and
not the other fails there. Where the table has several rows for one kind (``guardrail``,
``new_evidence``), ``markers`` are words of the reason that pick the row; the first row of the
kind answers when none matches.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Advice:
    """One row: its ``kind`` (an ``EscalationKind`` value), what to do about it (the README's
    Markdown), and the words of a reason that pick this row among the kind's rows."""

    kind: str
    what_to_do: str
    markers: tuple[str, ...] = ()


ADVICE: tuple[Advice, ...] = (
    Advice("guardrail", "by hand. If the membership itself is the mistake, remove it, then "
           "`--force`", ("protected group",)),
    Advice("guardrail", "by hand (an administrator's reset is an administrator's decision)",
           ("directory role",)),
    Advice("guardrail", "remove its access, or ask the home organisation to secure it; "
           "unblock by hand", ("guest account", "external account")),
    Advice("on_premises", "reset the password on-premises (or at the identity provider), "
           "then remove the block by hand"),
    Advice("circuit_breaker", "find out which, and lead; for each account to secure now, "
           "`--force`"),
    Advice("no_account", "a plain request naming the right address, or the object id"),
    Advice("refused", "fix the cause (`remediation doctor` names the permission or role to "
           "grant), then `--force`"),
    Advice("unblock_failed", "remove the block by hand, or through Microsoft support for the "
           "limit"),
    Advice("gave_up", "once the service answers, `--force`"),
    Advice("reblocked", "investigate (sign-ins, app consents, inbox rules, authentication "
           "methods); then `--force`, or finish by hand"),
    Advice("still_listed", "check the *Restricted entities* page; remove the block by hand, "
           "or ask Microsoft support"),
    Advice("unverified", "check the list yourself (`Get-BlockedSenderAddress -SenderAddress "
           "ADDRESS`): gone, nothing more to do; listed again, as `reblocked`"),
    Advice("new_evidence", "investigate as for `reblocked`; then `--force --alert-id ID`, or "
           "finish by hand", ("after the unblock",)),
    Advice("new_evidence", "follow the earlier case's row", ("human owns",)),
    Advice("ambiguous_alert", "choose: a plain request `remediation enqueue --user ADDRESS` "
           "for each account to secure; resolve the alert in Defender yourself once each is "
           "handled"),
    Advice("stuck", "read `status --user ADDRESS` (what is journaled done was done); then "
           "`--force`, or, when the block was already lifted, check as for `unverified`"),
    Advice("leftover_stayed", "remove it by hand (change the user's default sign-in method in "
           "Entra, then delete it), then unblock by hand or `--force`"),
    Advice("attacker_returned", "by hand: investigate the sign-ins, remove what was added, "
           "reset again (`--force`), and re-enable the account yourself if it was blocked"),
    Advice("disabled_account", "find out who disabled it and why; once a person has secured "
           "and re-enabled it, remove the block by hand or `--force`"),
    Advice("shared_mailbox", "secure each delegate named (`remediation enqueue --user "
           "DELEGATE`), then remove the block by hand"),
    Advice("rate_limit", "usually nothing: it releases itself within 24 hours; if the sending "
           "was not the owner's, `--force`"),
    Advice("out_of_scope", "secure it by hand; or, if it belongs in the unit, add it and "
           "`--force`"),
    Advice("approval_expired", "decide now: to remediate, `remediation enqueue --user ADDRESS "
           "--force` (a manual request proceeds at once, the guardrails checked again); to "
           "leave it, handle the block by hand and `remediation close CASE_ID --by NAME "
           "--reason TEXT`"),
)

# What the README's "`--force`" stands for (its section "When a case escalates").
FORCE = "`--force` is `remediation enqueue --user ADDRESS --force` (the account's address)"


def advice_for(kind: str, reason: str | None) -> Advice | None:
    """The row for ``kind``: the first whose markers the ``reason`` holds (any letter case),
    else the kind's first row; None for a kind the table does not know."""
    rows = [advice for advice in ADVICE if advice.kind == kind]
    said = (reason or "").lower()
    chosen = next((row for row in rows if any(m in said for m in row.markers)), None)
    return chosen or (rows[0] if rows else None)
