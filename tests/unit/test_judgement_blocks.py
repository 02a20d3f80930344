"""The rules behind blocks that need judgement: who can use a mailbox (Exchange's rows as
they come), what a rate-limit block says, which alerts speak to a takeover, and how the
guardrails word a disabled account and a shared mailbox."""

from datetime import UTC, datetime

import pytest

from remediation.domain.alerts import Alert, is_compromise_alert
from remediation.domain.blocks import BlockedSender
from remediation.domain.delegates import Delegate, MailboxFacts, delegates_from
from remediation.domain.directory import DirectoryUser
from remediation.domain.guardrails import Memberships, TenantDomains, Verdict, judge
from remediation.domain.rate_limits import RateLimitBlock, is_rate_limit, reason_fields

GUID = "8d1b7a4e-3c2f-4e5d-9a6b-1c0d2e3f4a5b"


def row(user: str, rights: object, *, inherited: bool = False, deny: bool = False) -> dict[
        str, object]:
    return {"User": user, "AccessRights": rights, "IsInherited": inherited, "Deny": deny}


def test_delegates_leave_out_self_inherited_denied_and_deleted_principals() -> None:
    found = delegates_from(
        [row("NT AUTHORITY\\SELF", "FullAccess, ReadPermission"),
         row("NAMPR01A001\\Exchange Servers", ["FullAccess"], inherited=True),
         row("NAMPR01A001\\Administrator", ["FullAccess"], inherited=True, deny=True),
         row("kim@contoso.com", ["FullAccess"], deny=True),
         row("S-1-5-21-3623811015-3361044348-30300820-1013", ["FullAccess"]),
         row("reader@contoso.com", "ReadPermission"),
         row("Ben@Contoso.com", "FullAccess, ReadPermission"),
         row("Front Desk", ["FullAccess"])],
        [{"Trustee": "NT AUTHORITY\\SELF", "AccessRights": ["SendAs"]},
         {"Trustee": "ben@contoso.com", "AccessRights": ["SendAs"],
          "AccessControlType": "Allow", "IsInherited": False},
         {"Trustee": "eve@contoso.com", "AccessRights": ["SendAs"],
          "AccessControlType": "Deny"}],
        [{"DisplayName": "Carol", "PrimarySmtpAddress": "carol@contoso.com"},
         "\"Dan\" <dan@contoso.com>", GUID])

    assert found == [
        Delegate("Ben@Contoso.com", ("FullAccess", "SendAs")),
        Delegate("Front Desk", ("FullAccess",)),
        Delegate("carol@contoso.com", ("SendOnBehalf",)),
        Delegate("dan@contoso.com", ("SendOnBehalf",)),
        Delegate(GUID, ("SendOnBehalf",)),
    ]
    assert found[0].describe() == "Ben@Contoso.com (FullAccess, SendAs)"
    assert "a group" in found[1].describe()


@pytest.mark.parametrize(("reason", "temporary", "expected"), [
    ("EmailSendingLimitExceeded;InternalRecipientCountToday=1;ExternalRecipientCountToday=9",
     False, True),
    ("emailsendinglimitexceeded;ExceedingLimitType=Internal", False, True),
    ("ExceedingLimitType=External;InternalRecipientCountToday=0;ExternalRecipientCountToday=612",
     False, False),
    ("ExceedingLimitType=External;InternalRecipientCountToday=0;ExternalRecipientCountToday=612",
     True, True),
    ("", False, False),
])
def test_which_blocks_are_rate_limit_blocks(reason: str, temporary: bool,
                                            expected: bool) -> None:
    block = BlockedSender("x@contoso.com", reason, None, temporary=temporary)
    assert is_rate_limit(block) is expected


def test_a_rate_limit_block_is_described_with_its_counts() -> None:
    block = BlockedSender(
        "news@contoso.com", "EmailSendingLimitExceeded;InternalRecipientCountToday=12;"
        "ExternalRecipientCountToday=10412;ExceedingLimitType=External;LastMessageRcptCount=250",
        datetime(2026, 1, 5, 8, tzinfo=UTC))
    assert reason_fields(block.reason)["LastMessageRcptCount"] == "250"
    shown = RateLimitBlock("news@contoso.com", block)
    assert shown.counts == (12, 10412)
    assert shown.describe() == (
        "news@contoso.com: over its recipient rate limit (EmailSendingLimitExceeded): 12 "
        "internal and 10412 external recipients today, limit type External")
    unknown = RateLimitBlock("x@contoso.com", BlockedSender("x@contoso.com", "", None,
                                                            temporary=True))
    assert unknown.counts == (None, None)
    assert "TemporaryBlock: an unknown number of internal" in unknown.describe()


@pytest.mark.parametrize(("title", "compromise"), [
    ("Suspicious email sending patterns detected", True),
    ("SUSPICIOUS EMAIL SENDING PATTERNS DETECTED", True),
    ("Suspicious email forwarding activity", True),  # an admin's own ALERT_TITLES
    ("User restricted from sending email", False),
    ("Email sending limit exceeded", False),
    ("  email sending limit exceeded ", False),
])
def test_alerts_that_only_report_a_block_or_a_volume_are_no_compromise(
        title: str, compromise: bool) -> None:
    alert = Alert("fa1", title, "new", "microsoftDefenderForOffice365", "x@contoso.com")
    assert is_compromise_alert(alert) is compromise
    other = Alert("da1", title, "new", "microsoftDefenderForEndpoint", "x@contoso.com")
    assert not is_compromise_alert(other)


DISABLED = DirectoryUser(id="3f2a1b4c-0000-4000-8000-00000000abcd",
                         user_principal_name="info@contoso.com", mail="info@contoso.com",
                         account_enabled=False)


NO_MEMBERSHIPS = Memberships()


def judged(user: DirectoryUser, facts: MailboxFacts | None,
           memberships: Memberships = NO_MEMBERSHIPS) -> tuple[Verdict, str]:
    guard = judge(user, memberships, TenantDomains(), frozenset(), facts)
    return guard.verdict, guard.reason


def test_a_shared_mailbox_names_its_delegates_and_a_disabled_user_is_never_re_enabled() -> None:
    shared = MailboxFacts("SharedMailbox", (Delegate("ben@contoso.com", ("SendAs",)),))
    verdict, reason = judged(DISABLED, shared)
    assert verdict is Verdict.ESCALATE
    assert reason.startswith("shared mailbox (SharedMailbox")
    assert "ben@contoso.com (SendAs)" in reason
    verdict, reason = judged(DISABLED, MailboxFacts("SharedMailbox"))
    assert "no account holds FullAccess, SendAs or SendOnBehalf" in reason
    for facts in (MailboxFacts("UserMailbox"), MailboxFacts(None), None):
        verdict, reason = judged(DISABLED, facts)
        assert verdict is Verdict.ESCALATE
        assert "never re-enable" in reason
    verdict, reason = judged(DISABLED, MailboxFacts(unreadable="403 from Exchange"))
    assert "could not be read: 403 from Exchange" in reason


def test_an_administrator_is_escalated_as_one_first_even_when_disabled() -> None:
    shared = MailboxFacts("SharedMailbox", (Delegate("ben@contoso.com", ("SendAs",)),))
    verdict, reason = judged(DISABLED, shared, Memberships(roles=("Global Administrator",)))
    assert verdict is Verdict.ESCALATE
    assert reason.startswith("holds directory role(s) Global Administrator")


def test_an_enabled_account_is_judged_as_today_whatever_its_mailbox() -> None:
    enabled = DirectoryUser(id=DISABLED.id, user_principal_name=DISABLED.user_principal_name,
                            mail=DISABLED.mail, account_enabled=True)
    assert judged(enabled, None)[0] is Verdict.PROCEED
