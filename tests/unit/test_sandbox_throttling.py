"""The sandbox's throttling as Graph does it: once the threshold is exceeded, "Microsoft Graph
limits any further requests from that client app for some time"
(https://learn.microsoft.com/graph/throttling): a fault that ``holds`` answers every request
it matches within its Retry-After, not only the one that tripped it."""

from remediation.sandbox import Fault, SandboxTenant


def test_a_holding_429_refuses_every_matching_request_within_its_retry_after() -> None:
    tenant = SandboxTenant()
    tenant.add_fault(Fault(status=429, retry_after=60, holds=True, path="^/v1.0/users"))

    answers = [tenant.take_fault("GET", f"/v1.0/users/{n}", None, None) for n in range(5)]

    assert [a.status if a else None for a in answers] == [429] * 5
    assert tenant.take_fault("POST", "/adminapi/beta/t/InvokeCommand", "Get-Mailbox",
                             None) is None


def test_a_429_that_does_not_hold_refuses_its_one_request() -> None:
    tenant = SandboxTenant()
    tenant.add_fault(Fault(status=429, retry_after=60, path="^/v1.0/users"))

    answers = [tenant.take_fault("GET", f"/v1.0/users/{n}", None, None) for n in range(3)]

    assert [a.status if a else None for a in answers] == [429, None, None]


def test_holds_can_be_set_from_json() -> None:
    assert Fault.from_json({"status": 429, "retry_after": 1, "holds": True}).holds
