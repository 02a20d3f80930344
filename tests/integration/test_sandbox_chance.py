"""Faults that strike a share of the calls (``Fault.chance``), drawn from the tenant's seed:
the reliability suite's throttling and outages, the same for the same seed and call order."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from remediation.sandbox import Fault, SandboxServer, SandboxTenant, demo_tenant

AUTH = {"Authorization": "Bearer sandbox-token"}
CALLS = 400


@pytest.fixture
def tenant() -> SandboxTenant:
    return demo_tenant(with_alerts=False)


@pytest.fixture
def client(tenant: SandboxTenant) -> Iterator[httpx.Client]:
    server = SandboxServer(tenant)
    base = server.start_in_thread()
    try:
        with httpx.Client(base_url=base, headers=AUTH, timeout=5) as http:
            yield http
    finally:
        server.stop_thread()


def statuses(client: httpx.Client, tenant: SandboxTenant, seed: int) -> list[int]:
    tenant.clear_faults()
    tenant.seed_faults(seed)
    tenant.add_fault(Fault(status=429, retry_after=1, code="TooManyRequests", times=None,
                           chance=0.2))
    tenant.add_fault(Fault(status=503, times=None, chance=0.5))
    return [client.get("/v1.0/domains").status_code for _ in range(CALLS)]


def test_a_fault_with_a_chance_strikes_that_share_of_calls_the_same_way_per_seed(
        client: httpx.Client, tenant: SandboxTenant) -> None:
    first = statuses(client, tenant, seed=7)
    again = statuses(client, tenant, seed=7)
    other = statuses(client, tenant, seed=8)

    assert first == again
    assert first != other
    # 20% throttled; of the calls it spares, half are answered 503 (40% of all).
    assert 0.14 * CALLS < first.count(429) < 0.26 * CALLS
    assert 0.33 * CALLS < first.count(503) < 0.47 * CALLS
    assert first.count(200) == CALLS - first.count(429) - first.count(503)
    throttled = client.get("/v1.0/domains")  # the faults stay: times=None
    assert throttled.status_code in (200, 429, 503)


def test_a_chance_outside_zero_to_one_is_refused(client: httpx.Client) -> None:
    refused = client.post("/_sandbox/faults", headers={"Authorization": ""},
                          json={"status": 429, "chance": 1.5})
    accepted = client.post("/_sandbox/faults", headers={"Authorization": ""},
                           json={"status": 429, "chance": 0.01, "times": None})

    assert refused.status_code == 400
    assert "chance" in refused.json()["error"]
    assert accepted.status_code == 204
