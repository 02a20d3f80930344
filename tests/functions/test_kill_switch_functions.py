"""The kill switch in Azure's shape: two Functions instances sharing the Table journal (on
Azurite) and Service Bus (the recording twin). `remediation pause` writes the journal; from
the next message neither instance changes anything in the sandbox tenant: the trigger
completes the message after scheduling a copy five minutes on that carries the attempts made
before it, so however many times the copy comes back while paused, nothing is given up or
dead-lettered. After `remediation resume` the copy does the work."""

import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from remediation.bootstrap import Application, bootstrap
from remediation.config import Settings
from remediation.domain.cases import Case, CaseState
from remediation.entrypoints import functions
from remediation.entrypoints.kill_switch import pause, resume
from remediation.sandbox import SandboxTenant
from remediation.service.pausing import PAUSE_RECHECK, PAUSED
from tests.conftest import sandbox_settings
from tests.e2e.test_safety import writes
from tests.functions.test_function_app import (
    ADELE,
    MAX_DELIVERIES,
    REQUESTS,
    VERIFICATIONS,
    redeliver,
    sb_message,
)
from tests.service_bus_fake import RecordingServiceBusClient, properties_of

REASON = "phishing wave under review"


@pytest.fixture
def bus() -> RecordingServiceBusClient:
    return RecordingServiceBusClient()


@pytest.fixture
def settings(sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
             azurite_table_connection_string: str) -> Settings:
    return sandbox_settings(sandbox_url, tenant, tmp_path / "db",
                            service_bus_namespace="example.servicebus.windows.net",
                            journal_table_connection_string=azurite_table_connection_string,
                            journal_table_name=f"journal{uuid.uuid4().hex[:12]}",
                            max_delivery_count=MAX_DELIVERIES, http_max_retries=0,
                            sweep_restricted_users=False)


@pytest.fixture
async def instances(settings: Settings, bus: RecordingServiceBusClient,
                    ) -> AsyncIterator[list[Application]]:
    """Two Functions instances of one app: one journal table, one Service Bus namespace."""
    apps = [bootstrap(settings, service_bus_client=bus) for _ in range(2)]
    yield apps
    functions.use_application(None)
    for app in apps:
        await app.aclose()


async def on(app: Application, trigger: Any, message: Any) -> None:
    """``trigger`` as the host calls it on instance ``app``; returning completes."""
    functions.use_application(app)
    await trigger(message)


async def only_case(app: Application) -> Case:
    [case] = await app.journal.list_cases()
    return case


def pause_notes(case: Case) -> list[str]:
    return [step.detail for step in case.steps if step.name == PAUSED]


async def test_a_request_while_paused_is_kept_on_both_instances_and_done_after_resume(
        instances: list[Application], settings: Settings, tenant: SandboxTenant,
        bus: RecordingServiceBusClient) -> None:
    assert type(instances[0].journal).__name__ == "TableJournal"
    await pause(settings, "alice@contoso.com", REASON, io.StringIO())
    before = datetime.now(UTC)

    await on(instances[0], functions.remediate, sb_message(json.dumps({"user": ADELE})))

    [copy] = bus.senders[REQUESTS].scheduled
    assert properties_of(copy.message) == {"delivery_attempts": 0, "retry_of": "m-1"}
    assert before + PAUSE_RECHECK <= copy.at <= datetime.now(UTC) + PAUSE_RECHECK
    assert copy.message.session_id == ADELE
    # The copy comes back, to either instance, many more times than MAX_DELIVERY_COUNT.
    for turn in range(3 * MAX_DELIVERIES):
        await on(instances[turn % 2], functions.remediate,
                 redeliver(bus.senders[REQUESTS].scheduled[-1].message))
    last = bus.senders[REQUESTS].scheduled[-1].message
    assert properties_of(last) == {"delivery_attempts": 0, "retry_of": "m-1"}

    assert writes(tenant) == []
    assert tenant.user(ADELE).password_changes == []
    case = await only_case(instances[1])
    assert case.state is CaseState.RECEIVED
    assert case.request_ids == ("m-1",)  # the original's id, kept by every copy
    [note] = pause_notes(case)
    assert "alice@contoso.com" in note and REASON in note

    await resume(settings, "bob@contoso.com", io.StringIO())
    await on(instances[1], functions.remediate, redeliver(last))

    done = await only_case(instances[0])
    assert done.state is CaseState.AWAITING_VERIFICATION
    assert len(tenant.user(ADELE).password_changes) == 1
    assert ADELE not in tenant.blocked_addresses()


async def test_a_check_due_while_paused_waits_and_completes_after_resume(
        instances: list[Application], settings: Settings, tenant: SandboxTenant,
        bus: RecordingServiceBusClient) -> None:
    await on(instances[0], functions.remediate, sb_message(json.dumps({"user": ADELE})))
    assert (await only_case(instances[0])).state is CaseState.AWAITING_VERIFICATION
    check = bus.senders[VERIFICATIONS].scheduled[0].message
    await pause(settings, "alice@contoso.com", REASON, io.StringIO())
    asked = len(tenant.requests())

    await on(instances[1], functions.verify, redeliver(check))
    for turn in range(3 * MAX_DELIVERIES):
        await on(instances[turn % 2], functions.verify,
                 redeliver(bus.senders[VERIFICATIONS].scheduled[-1].message))

    kept = bus.senders[VERIFICATIONS].scheduled[-1].message
    assert properties_of(kept)["delivery_attempts"] == 0
    assert len(tenant.requests()) == asked  # the list not even read
    waiting = await only_case(instances[0])
    assert waiting.state is CaseState.AWAITING_VERIFICATION
    assert len(pause_notes(waiting)) == 1

    await resume(settings, "bob@contoso.com", io.StringIO())
    await on(instances[0], functions.verify, redeliver(kept))

    assert (await only_case(instances[1])).state is CaseState.VERIFIED
