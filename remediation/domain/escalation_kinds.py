"""Why a case went to a person, as kinds: one per way an operator recovers from it.

The reason text says what happened in words (``circuit breaker open: ...``); the kind names
the row of the README's "When a case escalates" table that says what to do about it
(``remediation enqueue --user X --force``, or by hand), and what the product does then. Every
escalation names its kind (``Outcomes.escalate`` requires one), the journal keeps it in the
``escalated`` step's data (``{"kind": ...}``, in ``status --json``), and a unit test checks
that the README has a row for every kind, so a new kind cannot ship undocumented.
"""

from enum import StrEnum


class EscalationKind(StrEnum):
    # An account the robot never resets: a protected group's member or owner (PIM included),
    # a directory role holder, a guest or external account.
    GUARDRAIL = "guardrail"
    # Synced from on-premises AD or federated: sessions revoked, the password is not ours.
    ON_PREMISES = "on_premises"
    # MAX_REMEDIATIONS_PER_HOUR reached: nothing was changed.
    CIRCUIT_BREAKER = "circuit_breaker"
    # The name found no account in the directory, or several.
    NO_ACCOUNT = "no_account"
    # Graph or Exchange refused a step for good (a permission, a role, any other 4xx).
    REFUSED = "refused"
    # Secured (reset, sessions, mailbox), but the block could not be lifted.
    UNBLOCK_FAILED = "unblock_failed"
    # Transient failures until the last attempt: the case stopped where the outage met it.
    GAVE_UP = "gave_up"
    # Blocked again after (or while) the block was lifted: the account is still abused.
    REBLOCKED = "reblocked"
    # Still on the Restricted users list at the last check.
    STILL_LISTED = "still_listed"
    # The block was lifted, but the checks could not be made.
    UNVERIFIED = "unverified"
    # A Defender alert created after the case acted, or while a person owns its block.
    NEW_EVIDENCE = "new_evidence"
    # An alert whose evidence names several accounts: a person chooses.
    AMBIGUOUS_ALERT = "ambiguous_alert"
    # Nothing moved a working case after the sweeper's resumes.
    STUCK = "stuck"
    # What the attacker left (a sign-in method, a consent, a rule) could not be removed: the
    # account is secured otherwise, the block stays.
    LEFTOVER_STAYED = "leftover_stayed"
    # A verification check found something added to the account after the case acted.
    ATTACKER_RETURNED = "attacker_returned"
    # A disabled account (an administrator's, or Defender's attack disruption): never
    # re-enabled, never reset; its block stays.
    DISABLED_ACCOUNT = "disabled_account"
    # A shared (room, equipment) mailbox: nobody signs in as it; its delegates are named.
    SHARED_MAILBOX = "shared_mailbox"
    # A recipient rate-limit block no compromise alert names (RATE_LIMIT_BLOCKS=escalate).
    RATE_LIMIT = "rate_limit"
    # Outside the administrative unit the operator chose (SCOPE_ADMINISTRATIVE_UNIT_ID):
    # nothing was changed, the robot never touches it.
    OUT_OF_SCOPE = "out_of_scope"
