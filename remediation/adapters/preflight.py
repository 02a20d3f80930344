"""The preflight's reads (``remediation/service/doctor.py``), through the adapters the worker
uses, so doctor exercises the same clients, endpoints, headers and credential.

Every read is harmless and asks for one item, with parameters each cmdlet has (its
office-docs-powershell reference): Graph ``$top=1``; ``Get-Mailbox`` with ``ResultSize: 1`` and
no ``Identity`` (an empty ``Identity`` would mean "all objects"); ``Get-BlockedSenderAddress``,
which has ``-SenderAddress`` and nothing else, for one address no tenant holds (Exchange's
"couldn't be found" about it, or nothing, proves the right to read the list);
Service Bus by peeking (never receiving) each queue's dead-letter sub-queue, which has no
sessions, so no session is locked (Azure/azure-sdk-for-net#21271: an ordinary receiver reads
the dead-letter queue of a session-enabled entity); the journal by listing one case. The
right to send (Service Bus Data Sender: retries and verification checks are scheduled
messages) is exercised by scheduling a message a year ahead on each queue and cancelling it
at once; its body is one the worker would only reject, should the cancel ever be lost. On the
local SQLite queue the message is written in a transaction that is rolled back, so the queue
figures doctor prints never count it and nothing is left in the file. A local database that
does not exist yet is not created: doctor says so and leaves it to the first ``run``.
The app's directory roles, when its token has no ``wids``: its role assignments,
``$filter=principalId eq '<oid>'``.

The PIM reads the guardrails make (role eligibility, PIM for Groups eligibility and
assignments) are asked in the guardrails' own shape, ``$filter=principalId eq '<id>'`` (PIM
for Groups requires a principalId or groupId filter), for the nil object id, which no
principal has. A refusal is told by graph_roles.pim_shape: the licence refusal is NoPimData,
the answers that prove nothing are Refused with their shape.

Tokens are turned into claims here and dropped: no token leaves this module.
"""

import asyncio
import json
import re
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from azure.core.credentials_async import AsyncTokenCredential

from remediation.adapters.exchange_client import ExchangeAdminClient, ExchangeCmdletError
from remediation.adapters.graph_caller import GraphCaller, GraphRequestError
from remediation.adapters.graph_roles import PimShape, pim_shape
from remediation.adapters.sqlite_queue import SqliteQueue
from remediation.adapters.token_scopes import exchange_scope, graph_scope
from remediation.domain.errors import PermanentError, TransientError
from remediation.domain.tokens import TokenClaims, read_claims
from remediation.logsafety import redact
from remediation.permissions import EXCHANGE_ONLINE, MICROSOFT_GRAPH
from remediation.service.doctor import (
    NOT_ONBOARDED,
    UNSUPPORTED,
    NoMember,
    NoPimData,
    Refused,
    TokenUnavailable,
    Unreachable,
)
from remediation.service.ports import Journal

if TYPE_CHECKING:
    from kiota_abstractions.request_information import RequestInformation
    from msgraph.graph_service_client import GraphServiceClient

Probe = Callable[[], Awaitable[str]]
QueueProbe = Probe
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SCHEDULE_AHEAD = timedelta(days=365)
# A sender no tenant has (RFC 2606 reserves .invalid): asking whether it is listed reads
# nothing of anyone's.
PROBE_SENDER = "remediation-doctor@probe.invalid"
NOBODY = "00000000-0000-0000-0000-000000000000"
_PIM = {"role_eligibility": "roleManagement/directory/roleEligibilityScheduleInstances",
        "group_eligibility":
            "identityGovernance/privilegedAccess/group/eligibilityScheduleInstances",
        "group_assignments":
            "identityGovernance/privilegedAccess/group/assignmentScheduleInstances"}
_DOCTOR_SHAPES: dict[PimShape, str] = {"not onboarded": NOT_ONBOARDED,
                                       "unsupported": UNSUPPORTED}
PROBE_SESSION = "remediation-doctor"


def probe_body() -> bytes:
    """What a doctor's scheduled message carries: no ``user``, so were its cancel ever lost,
    the worker would journal it as rejected and do nothing."""
    return json.dumps({"doctor": "a probe of remediation doctor, cancelled when scheduled"}
                      ).encode()


def scopes(graph_endpoint: str, exchange_endpoint: str) -> dict[str, str]:
    """The scope of each resource's token: the very ones the Graph and Exchange clients ask
    for (``token_scopes``)."""
    return {MICROSOFT_GRAPH: graph_scope(graph_endpoint),
            EXCHANGE_ONLINE: exchange_scope(exchange_endpoint)}


class _NotFound(Exception):
    """Exchange's "couldn't be found" about the probe's address: the read was allowed."""


class TenantPreflight:
    def __init__(self, *, credential: AsyncTokenCredential, scopes: dict[str, str],
                 graph: GraphCaller, exchange: ExchangeAdminClient, queues: Probe,
                 journal: Probe, schedule: Probe) -> None:
        self._credential = credential
        self._scopes = scopes
        self._graph = graph
        self._exchange = exchange
        self._reads: dict[str, Callable[[], Awaitable[str]]] = {
            "alerts": lambda: self._graph_count("security/alerts_v2?$top=1", "alerts"),
            "users": lambda: self._graph_count("users?$top=1&$select=id", "users"),
            "role_assignments": lambda: self._graph_count(
                "roleManagement/directory/roleAssignments?$top=1", "role assignments"),
            **{key: self._pim_read(path) for key, path in _PIM.items()},
            # List oAuth2PermissionGrants takes only $filter (no $top): asked for a principal
            # no grant names, an empty answer proves the grants readable.
            "consent_grants": lambda: self._graph_count(
                "oauth2PermissionGrants?$filter=principalId eq "
                "'00000000-0000-0000-0000-000000000000'", "grants"),
            "audit_log": lambda: self._graph_count("auditLogs/directoryAudits?$top=1",
                                                   "records"),
            "restricted_users": self._restricted_users,
            "mailbox": lambda: self._cmdlet("Get-Mailbox", {"ResultSize": 1}, "mailboxes"),
            "queues": queues,
            "schedule": schedule,
            "journal": journal,
        }

    async def claims(self, resource: str) -> TokenClaims | None:
        try:
            token = await self._credential.get_token(self._scopes[resource])
        except Exception as error:  # any credential's failure is the finding, not a crash
            raise TokenUnavailable(_first_line(error)) from None
        return read_claims(token.token)

    async def read(self, capability: str) -> str:
        return await self._reads[capability]()

    async def role_assignments(self, principal_id: str) -> frozenset[str]:
        return frozenset(role for role, scope in await self.role_assignments_at(principal_id)
                         if scope == "/")

    async def role_assignments_at(self, principal_id: str) -> frozenset[tuple[str, str]]:
        if not _GUID.fullmatch(principal_id):
            raise Refused(0, "", f"{principal_id[:40]!r} is not an object id")
        page = await self._graph_page("roleManagement/directory/roleAssignments"
                                      f"?$filter=principalId%20eq%20'{principal_id}'")
        items = page.get("value")
        return frozenset(
            (str(item["roleDefinitionId"]).lower(), str(item.get("directoryScopeId", "/")))
            for item in (items if isinstance(items, list) else [])
            if isinstance(item, dict) and item.get("roleDefinitionId"))

    async def administrative_unit(self, unit_id: str) -> str:
        """``GET /directory/administrativeUnits/{id}`` (Graph v1.0, "Get administrativeUnit":
        AdministrativeUnit.Read.All or Directory.Read.All)."""
        page = await self._graph_page(f"directory/administrativeUnits/{_segment(unit_id)}"
                                      "?$select=id,displayName")
        return str(page.get("displayName") or "no display name")

    async def unit_mailbox(self, unit_id: str) -> str:
        """One user member of the unit (``/members/microsoft.graph.user``, the OData cast "List
        members" documents), then its inbox rules and one mail folder: the reads Exchange RBAC
        for Applications must allow for MAILBOX_ACCESS=exchange-rbac. Reads only."""
        members = (await self._graph_page(f"directory/administrativeUnits/{_segment(unit_id)}"
                                          "/members/microsoft.graph.user?$select=id")).get("value")
        first = next((item.get("id") for item in (members if isinstance(members, list) else [])
                      if isinstance(item, dict) and item.get("id")), None)
        if first is None:
            raise NoMember()
        user = _segment(str(first))
        rules = await self._graph_page(f"users/{user}/mailFolders/inbox/messageRules")
        await self._graph_page(f"users/{user}/mailFolders?$top=1")
        listed = rules.get("value")
        count = len(listed) if isinstance(listed, list) else 0
        return f"member {first}: inbox rules readable ({count}), mail folders readable"

    async def _graph_page(self, path: str) -> dict[str, Any]:
        try:
            return await self._graph.send_json(f"doctor: GET {path}", _get(path))
        except GraphRequestError as error:
            raise Refused(error.status, error.code) from None
        except TransientError as error:
            raise Unreachable(error.reason) from None
        except PermanentError as error:
            raise Refused(0, "", error.reason) from None

    def _pim_read(self, path: str) -> Callable[[], Awaitable[str]]:
        return lambda: self._graph_count(
            f"{path}?$filter=principalId%20eq%20'{NOBODY}'", "instances", pim=True)

    async def _graph_count(self, path: str, noun: str, *, pim: bool = False) -> str:
        try:
            page = await self._graph.send_json(f"doctor: GET {path}", _get(path))
        except GraphRequestError as error:
            shape = pim_shape(error) if pim else None
            if shape == "licence":
                raise NoPimData() from None
            raise Refused(error.status, error.code,
                          shape=_DOCTOR_SHAPES[shape] if shape else "") from None
        except TransientError as error:
            raise Unreachable(error.reason) from None
        except PermanentError as error:
            raise Refused(0, "", error.reason) from None
        return _answered(page.get("value"), noun)

    async def _restricted_users(self) -> str:
        try:
            items = await self._cmdlet("Get-BlockedSenderAddress",
                                       {"SenderAddress": PROBE_SENDER}, "entries")
        except _NotFound:
            return f"readable ({PROBE_SENDER} is not listed)"
        return items

    async def _cmdlet(self, cmdlet: str, parameters: dict[str, Any], noun: str) -> str:
        try:
            items = await self._exchange.invoke(cmdlet, parameters)
        except ExchangeCmdletError as error:
            if error.error.not_found_about(PROBE_SENDER):
                raise _NotFound from None
            exchange = error.error
            # An endpoint's own 404 (a wrong tenant id) is not a cmdlet's answer.
            ran = exchange.structured and exchange.status != 404
            raise Refused(exchange.status, exchange.code, exchange.message,
                          missing_rights=exchange.missing_rights,
                          cmdlet=cmdlet if ran else "") from None
        except TransientError as error:
            raise Unreachable(error.reason) from None
        except PermanentError as error:
            raise Refused(0, "", error.reason) from None
        return _answered(items, noun)


def local_queue_probe(queue: SqliteQueue, names: tuple[str, ...], path: str) -> QueueProbe:
    async def probe() -> str:
        try:
            counts = [(name, await queue.counts(name)) for name in names]
        except sqlite3.Error as error:
            raise Unreachable(f"{type(error).__name__}: {error}") from None
        return f"local SQLite queue in {path}: " + "; ".join(
            f"{name} {c.ready} ready, {c.scheduled} scheduled, {c.dead_lettered} dead-lettered"
            for name, c in counts)

    return probe


def local_schedule_probe(queue: SqliteQueue, names: tuple[str, ...]) -> QueueProbe:
    """Schedule a message a year ahead on each local queue, in a write rolled back."""

    async def probe() -> str:
        at = datetime.now(UTC) + SCHEDULE_AHEAD
        try:
            for name in names:
                await queue.rehearse_send(name, probe_body(), message_id=_probe_id(),
                                          session_id=PROBE_SESSION, scheduled_at=at,
                                          properties={"kind": "doctor"})
        except sqlite3.Error as error:
            raise Unreachable(f"{type(error).__name__}: {error}") from None
        return ("the local queue takes a scheduled message on " + " and ".join(names)
                + " (written, then rolled back)")

    return probe


def journal_probe(journal: Journal) -> Probe:
    """List one case of the journal."""
    return lambda: _journal(journal)


def not_created_probe(path: str) -> Probe:
    """For a local database that does not exist yet: say so, and create nothing (the
    configuration check has seen that its directory can be created and written)."""

    async def probe() -> str:
        return (f"no local database yet: {path} (REMEDIATION_DB) is created by the first "
                "run or enqueue; its directory is writable")

    return probe


class DeadLetterPeeker(Protocol):
    """The part of ``azure.servicebus.aio.ServiceBusClient`` the probes use."""

    def get_queue_receiver(self, queue_name: str, **kwargs: Any) -> Any: ...

    def get_queue_sender(self, queue_name: str, **kwargs: Any) -> Any: ...

    async def close(self) -> None: ...


def service_bus_probe(namespace: str, credential: AsyncTokenCredential,
                      names: tuple[str, ...], *, timeout: float,
                      client: DeadLetterPeeker | None = None) -> QueueProbe:
    """Peek one message of each queue's dead-letter sub-queue: reachable, the identity may
    receive (the Functions triggers' role), the queues exist; nothing is locked or taken."""

    async def probe() -> str:
        from azure.servicebus import ServiceBusSubQueue
        from azure.servicebus.exceptions import (
            MessagingEntityNotFoundError,
            ServiceBusAuthenticationError,
            ServiceBusAuthorizationError,
            ServiceBusError,
        )

        peeker = client or _service_bus_client(namespace, credential)
        name = names[0]
        found: list[str] = []
        try:
            for name in names:
                receiver = peeker.get_queue_receiver(
                    name, sub_queue=ServiceBusSubQueue.DEAD_LETTER)
                async with receiver:
                    peeked = await asyncio.wait_for(
                        receiver.peek_messages(max_message_count=1), timeout)
                found.append(f"{name} reachable" + (
                    ", messages in its dead-letter queue" if peeked else ""))
        except ServiceBusAuthorizationError:
            raise Refused(403, "Unauthorized", f"queue {name}") from None
        except ServiceBusAuthenticationError:
            raise Refused(401, "Unauthenticated", f"queue {name}") from None
        except MessagingEntityNotFoundError:
            raise Refused(404, "MessagingEntityNotFound", f"queue {name}") from None
        except (ServiceBusError, TimeoutError, OSError) as error:
            raise Unreachable(f"queue {name}: {type(error).__name__}") from None
        finally:
            if client is None:
                await peeker.close()
        return f"Service Bus {namespace}: " + "; ".join(found)

    return probe


def service_bus_schedule_probe(namespace: str, credential: AsyncTokenCredential,
                               names: tuple[str, ...], *, timeout: float,
                               client: DeadLetterPeeker | None = None) -> QueueProbe:
    """Schedule a message a year ahead on each queue and cancel it: the identity may send
    (Azure Service Bus Data Sender), as retries and verification checks need."""

    async def probe() -> str:
        from azure.servicebus import ServiceBusMessage
        from azure.servicebus.exceptions import (
            MessagingEntityNotFoundError,
            ServiceBusAuthenticationError,
            ServiceBusAuthorizationError,
            ServiceBusError,
        )

        sender_client = client or _service_bus_client(namespace, credential)
        name, step = names[0], "schedule"
        try:
            for name in names:
                step = "schedule"
                sender = sender_client.get_queue_sender(name)
                async with sender:
                    message = ServiceBusMessage(probe_body(), message_id=_probe_id(),
                                                session_id=PROBE_SESSION,
                                                application_properties={"kind": "doctor"})
                    numbers = await asyncio.wait_for(sender.schedule_messages(
                        message, datetime.now(UTC) + SCHEDULE_AHEAD), timeout)
                    step = f"cancel scheduled message {numbers[0]}"
                    await asyncio.wait_for(sender.cancel_scheduled_messages(numbers[0]),
                                           timeout)
        except ServiceBusAuthorizationError:
            raise Refused(403, "Unauthorized", f"queue {name}: {step}") from None
        except ServiceBusAuthenticationError:
            raise Refused(401, "Unauthenticated", f"queue {name}: {step}") from None
        except MessagingEntityNotFoundError:
            raise Refused(404, "MessagingEntityNotFound", f"queue {name}") from None
        except (ServiceBusError, TimeoutError, OSError) as error:
            raise Unreachable(f"queue {name}: {step}: {type(error).__name__}") from None
        finally:
            if client is None:
                await sender_client.close()
        return "scheduled a message on " + " and ".join(names) + ", then cancelled it"

    return probe


def _probe_id() -> str:
    return f"doctor-{uuid.uuid4().hex}"


def _service_bus_client(namespace: str, credential: AsyncTokenCredential) -> DeadLetterPeeker:
    from azure.servicebus.aio import ServiceBusClient

    peeker: DeadLetterPeeker = ServiceBusClient(namespace, credential, retry_total=0)
    return peeker


async def _journal(journal: Journal) -> str:
    from azure.core.exceptions import AzureError, HttpResponseError

    try:
        cases = await journal.list_cases(limit=1)
    except HttpResponseError as error:
        raise Refused(error.status_code or 0, str(getattr(error, "error_code", "") or "")
                      ) from None
    except TransientError as error:
        raise Unreachable(error.reason) from None
    except (AzureError, sqlite3.Error, OSError) as error:
        raise Unreachable(f"{type(error).__name__}: {_first_line(error)}") from None
    return "readable (" + ("no cases yet" if not cases else "the newest case listed") + ")"


def _get(path: str) -> Callable[["GraphServiceClient"], "RequestInformation"]:
    def build(client: "GraphServiceClient") -> "RequestInformation":
        from kiota_abstractions.method import Method
        from kiota_abstractions.request_information import RequestInformation

        info = RequestInformation(Method.GET)
        info.url = f"{client.request_adapter.base_url}/{path}"
        info.headers.try_add("Accept", "application/json")
        return info

    return build


def _segment(value: str) -> str:
    """A path segment of an id from settings or Graph: nothing but the id's own characters."""
    from urllib.parse import quote

    return quote(value, safe="")


def _answered(items: Any, what: str) -> str:
    count = len(items) if isinstance(items, list) else 0
    return f"answered ({what} on the first page: {count})"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return redact(f"{type(error).__name__}: {text[0] if text else 'no message'}")[:300]
