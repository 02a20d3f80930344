"""doctor's judgement of the chosen scope (service/doctor_scope.py) where the sandbox cannot
easily go: a token that names no service principal, an empty unit, a refused unit read."""

from dataclasses import dataclass, field

from remediation.domain.tokens import TokenClaims
from remediation.permissions import EXCHANGE_ONLINE, MICROSOFT_GRAPH, permissions_on
from remediation.service.doctor import NoMember, Refused, Status, Target, examine
from tests.unit.test_doctor import TARGET, FakePreflight

UNIT = "4d819ce9-9257-44a5-8d6e-2f1b3c5a7e90"
SCOPED = Target(**{**TARGET.__dict__, "administrative_unit_id": UNIT})


@dataclass
class ScopedPreflight(FakePreflight):
    held: frozenset[tuple[str, str]] = frozenset({
        ("fe930be7-5e62-47db-91af-98c3a49a38b1", f"/administrativeUnits/{UNIT}"),
        ("88d8e3e3-8f55-4a1e-953a-9b9898b8876b", "/"),
        ("29232cdf-9323-42fd-ade2-1d097af3e4de", "/")})
    unit: str | Exception = "Remediation scope"
    mailbox: str | Exception = "member x: inbox rules readable (0), mail folders readable"
    asked: list[str] = field(default_factory=list)

    async def role_assignments_at(self, principal_id: str) -> frozenset[tuple[str, str]]:
        self.asked.append(principal_id)
        return self.held

    async def administrative_unit(self, unit_id: str) -> str:
        if isinstance(self.unit, Exception):
            raise self.unit
        return self.unit

    async def unit_mailbox(self, unit_id: str) -> str:
        if isinstance(self.mailbox, Exception):
            raise self.mailbox
        return self.mailbox


async def test_the_scoped_option_in_place_passes_from_role_assignments() -> None:
    preflight = ScopedPreflight()

    report = await examine(preflight, SCOPED)

    assert report.ready, [f for f in report.findings if f.status is not Status.OK]
    assert preflight.asked  # read from the assignments, whatever wids says


async def test_a_token_naming_no_principal_leaves_the_scoped_roles_unverified() -> None:
    preflight = ScopedPreflight()
    preflight.tokens = {resource: TokenClaims(roles=frozenset(permissions_on(resource)),
                                              wids=None, delegated=False, tenant_id=None,
                                              object_id=None)
                        for resource in (MICROSOFT_GRAPH, EXCHANGE_ONLINE)}

    report = await examine(preflight, SCOPED)

    roles = {f.check: f for f in report.findings if f.check.startswith("role ")}
    assert {f.status for f in roles.values()} == {Status.UNVERIFIED}
    assert not report.ready and preflight.asked == []


async def test_a_unit_without_members_cannot_prove_the_mailbox_scope() -> None:
    preflight = ScopedPreflight(mailbox=NoMember())
    preflight.tokens[MICROSOFT_GRAPH] = TokenClaims(
        roles=frozenset(permissions_on(MICROSOFT_GRAPH)) - {"MailboxSettings.ReadWrite",
                                                             "Mail.ReadBasic.All"},
        wids=frozenset(), delegated=False, tenant_id=TARGET.tenant_id,
        object_id="5a1f0b7e-2c3d-4e5f-8a9b-0c1d2e3f4a5b")

    report = await examine(preflight, Target(**{**SCOPED.__dict__,
                                                "mailbox_access": "exchange-rbac"}))

    by_check = {f.check: f for f in report.findings}
    read = by_check["read a member's inbox rules and folders (Exchange RBAC scope)"]
    assert read.status is Status.UNVERIFIED and "no user member" in read.result
    assert by_check["permission MailboxSettings.ReadWrite"].status is Status.UNVERIFIED
    assert not report.ready


async def test_a_refused_unit_read_names_the_permission() -> None:
    report = await examine(ScopedPreflight(unit=Refused(403, "Authorization_RequestDenied")),
                           SCOPED)

    read = next(f for f in report.findings if f.check == "read the administrative unit")
    assert read.status is Status.FAIL and "grant Directory.Read.All" in read.fix
