"""The case journal in Azure Table Storage: the Azure twin of SqliteJournal, in one table.

Layout (PartitionKey / RowKey):

- ``case:{case id}`` / ``case``: the case as JSON (``doc``, ``doc_1``, ...), plus ``user``,
  ``state``, ``version``, ``created_at`` and ``updated_at`` for people browsing the table;
- ``case:{case id}`` / ``step-{ns}-{random}``: one row per step, sorting by time of writing,
  inserted (never upserted) so two writers cannot overwrite each other's step;
- ``user:{user}`` / ``{created, newest first}-{insertion, newest first}-{case id}``: an index
  row per case, for ``latest_case`` and ``list_cases(user)``;
- ``cases`` / ``{created}-{insertion}-{case id}``: every case oldest first, for ``list_cases()``;
- ``request:{request id}`` / ``case``: the case a request was first recorded in;
- ``breaker`` / ``resets``: the reset circuit breaker, the recent ``[time, case id]`` pairs
  as JSON, replaced under its ETag so concurrent workers cannot both take the last place.

The case partition is written first (in one transaction), then the index rows, so an index
row never points at a case that was never stored; a failure in between leaves a case that
only ``get_case`` finds, and the redelivered request opens a new one.
"""

import asyncio
import json
import random
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableEntity, TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient

from remediation.config import ConfigError
from remediation.domain.cases import Case, CaseState, Step
from remediation.domain.errors import ConcurrentUpdate, PermanentError, TransientError

Entity = dict[str, Any]

_CASE_ROW = "case"
_ALL_CASES = "cases"
# Table Storage limits: 64 KiB per string property (UTF-16), 1 MiB per entity, 100 entities
# and 4 MiB per transaction. json.dumps escapes non-ASCII, so one character is two bytes.
_PART_CHARS = 32_000
_MAX_PARTS = 15
_BATCH_ENTITIES = 100
_BATCH_CHARS = 1_000_000
_LOAD_CONCURRENCY = 16
_KEY_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@.-_+")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INVERT = 10**20 - 1
_CLIENT_OPTIONS: dict[str, Any] = {"retry_total": 3, "connection_timeout": 10,
                                   "read_timeout": 30}
_BREAKER_KEY = ("breaker", "resets")
# A lost race means another worker took a place, so ``limit`` + 1 losses cannot happen in one
# window: the bound is never reached in practice, and it keeps the loop finite.
_BREAKER_MAX_ATTEMPTS = 100
_BREAKER_BACKOFF = 0.02


class TableJournal:
    """Cases and steps in one Azure table; ``update_case`` is guarded by the row's ETag."""

    def __init__(self, client: TableClient, *,
                 owned_credential: AsyncTokenCredential | None = None) -> None:
        self._client = client
        self._owned_credential = owned_credential
        self._table_ready = False
        self._table_lock = asyncio.Lock()

    async def close(self) -> None:
        await self._client.close()
        if self._owned_credential is not None:
            await self._owned_credential.close()

    async def add_case(self, case: Case) -> None:
        client = await self._table()
        rows = [_case_entity(case), *(_step_entity(case.case_id, step) for step in case.steps)]
        with _translated(f"storing case {case.case_id}"):
            for number, batch in enumerate(_batches(rows)):
                try:
                    await client.submit_transaction([("create", row) for row in batch])
                except TableTransactionError as error:
                    if number == 0 and error.status_code == 409:
                        raise ConcurrentUpdate(f"case {case.case_id} already exists") from None
                    raise
            await asyncio.gather(*(_insert(client, row) for row in _index_entities(case)))
        await self._record_requests(case)

    async def update_case(self, case: Case) -> Case:
        client = await self._table()
        stored = case.evolve(version=case.version + 1)
        with _translated(f"updating case {case.case_id}"):
            try:
                current = await client.get_entity(_case_key(case.case_id), _CASE_ROW,
                                                  select=["version"])
            except ResourceNotFoundError:
                raise ConcurrentUpdate(f"case {case.case_id} does not exist") from None
            if current.get("version") != case.version:
                raise ConcurrentUpdate(f"case {case.case_id} changed since it was read")
            try:
                await client.update_entity(
                    _case_entity(stored), mode=UpdateMode.REPLACE,
                    etag=current.metadata["etag"], match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError):
                raise ConcurrentUpdate(
                    f"case {case.case_id} changed since it was read") from None
        await self._record_requests(stored)
        return stored

    async def add_step(self, case_id: str, step: Step) -> None:
        client = await self._table()
        with _translated(f"adding step {step.name} to case {case_id}"):
            await client.create_entity(_step_entity(case_id, step))

    async def get_case(self, case_id: str) -> Case | None:
        client = await self._table()
        with _translated(f"reading case {case_id}"):
            rows = [row async for row in client.query_entities(
                "PartitionKey eq @pk", parameters={"pk": _case_key(case_id)})]
        return _case_from_rows(rows)

    async def case_with_request(self, request_id: str) -> Case | None:
        client = await self._table()
        with _translated(f"looking up request {request_id}"):
            try:
                row = await client.get_entity(_request_key(request_id), _CASE_ROW)
            except ResourceNotFoundError:
                return None
        return await self.get_case(row["case_id"])

    async def latest_case(self, user: str) -> Case | None:
        client = await self._table()
        with _translated("reading a user's latest case"):
            async for row in client.query_entities(
                    "PartitionKey eq @pk", parameters={"pk": _user_key(user)},
                    select=["case_id"], results_per_page=10):
                case = await self.get_case(row["case_id"])
                if case is not None and case.state is not CaseState.REJECTED:
                    return case
        return None

    async def list_cases(self, user: str | None = None, limit: int = 500) -> list[Case]:
        if limit <= 0:
            return []
        case_ids = await (self._all_case_ids(limit) if user is None
                          else self._user_case_ids(user, limit))
        return await self._load_many(case_ids)

    async def reserve_reset(self, case_id: str, now: datetime, limit: int,
                            window: timedelta) -> bool:
        """Read the breaker row, decide, and write it back only if nobody changed it since
        (ETag); a lost race reads again."""
        client = await self._table()
        for attempt in range(min(limit + 2, _BREAKER_MAX_ATTEMPTS)):
            with _translated("reserving a password reset"):
                row = await _breaker_row(client)
                places = _recent_places(row, now - window)
                if case_id in (held for _, held in places):
                    return True
                if len(places) >= limit:
                    return False
                places.append((_utc(now), case_id))
                if await _store_breaker(client, row, places):
                    return True
            await asyncio.sleep(random.uniform(0, _BREAKER_BACKOFF * (attempt + 1)))  # noqa: S311
        raise TransientError("the reset breaker row kept changing under concurrent writers; "
                             "try again later")

    async def _all_case_ids(self, limit: int) -> list[str]:
        client = await self._table()
        case_ids: list[str] = []
        with _translated("listing cases"):
            async for row in client.query_entities(
                    "PartitionKey eq @pk", parameters={"pk": _ALL_CASES}, select=["case_id"],
                    results_per_page=min(limit, 1000)):
                case_ids.append(row["case_id"])
                if len(case_ids) >= limit:
                    break
        return case_ids

    async def _user_case_ids(self, user: str, limit: int) -> list[str]:
        client = await self._table()
        with _translated("listing a user's cases"):
            newest_first = [row["case_id"] async for row in client.query_entities(
                "PartitionKey eq @pk", parameters={"pk": _user_key(user)}, select=["case_id"])]
        return newest_first[::-1][:limit]

    async def _load_many(self, case_ids: Sequence[str]) -> list[Case]:
        gate = asyncio.Semaphore(_LOAD_CONCURRENCY)

        async def load(case_id: str) -> Case | None:
            async with gate:
                return await self.get_case(case_id)

        cases = await asyncio.gather(*(load(case_id) for case_id in case_ids))
        return [case for case in cases if case is not None]

    async def _record_requests(self, case: Case) -> None:
        """Index every request id; the first case to record a request keeps it."""
        client = await self._table()
        rows = [{"PartitionKey": _request_key(request_id), "RowKey": _CASE_ROW,
                 "case_id": case.case_id} for request_id in case.request_ids]
        with _translated(f"indexing the requests of case {case.case_id}"):
            await asyncio.gather(*(_insert(client, row) for row in rows))

    async def _table(self) -> TableClient:
        if not self._table_ready:
            async with self._table_lock:
                if not self._table_ready:
                    with _translated("creating the journal table"), \
                            suppress(ResourceExistsError):
                        await self._client.create_table()
                    self._table_ready = True
        return self._client


def build_table_journal(*, endpoint: str | None, connection_string: str | None,
                        table_name: str,
                        credential: AsyncTokenCredential | None = None) -> TableJournal:
    """In Azure: ``https://<account>.table.core.windows.net`` and the managed identity
    (``credential``, or a DefaultAzureCredential this journal owns and closes). A connection
    string is for Azurite and local runs."""
    if endpoint and connection_string:
        raise ConfigError("the Table Storage journal takes an endpoint or a connection string, "
                          "not both")
    if connection_string:
        return TableJournal(TableClient.from_connection_string(
            connection_string, table_name, **_CLIENT_OPTIONS))
    if not endpoint:
        raise ConfigError("the Table Storage journal needs an endpoint "
                          "(https://<account>.table.core.windows.net)")
    owned: AsyncTokenCredential | None = None
    if credential is None:
        from azure.identity.aio import DefaultAzureCredential

        credential = owned = DefaultAzureCredential()
    client = TableClient(endpoint, table_name, credential=credential, **_CLIENT_OPTIONS)
    return TableJournal(client, owned_credential=owned)


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """Turn the SDK's transport, throttling and 5xx errors into TransientError."""
    try:
        yield
    except (ServiceRequestError, ServiceResponseError) as error:
        raise TransientError(f"Table Storage could not be reached while {action} "
                             f"({type(error).__name__})") from error
    except HttpResponseError as error:
        status = error.status_code or 0
        if status == 429 or status >= 500:
            answer = f"{status} {error.reason}" if error.reason else str(status)
            raise TransientError(f"Table Storage answered {answer} while {action}") from error
        raise


async def _breaker_row(client: TableClient) -> TableEntity | None:
    try:
        return await client.get_entity(*_BREAKER_KEY)
    except ResourceNotFoundError:
        return None


def _recent_places(row: TableEntity | None, cutoff: datetime) -> list[tuple[datetime, str]]:
    """The places taken at or after ``cutoff``, oldest first."""
    if row is None:
        return []
    places = [(datetime.fromisoformat(at), str(case_id))
              for at, case_id in json.loads(_joined(row))]
    return sorted(place for place in places if place[0] >= _utc(cutoff))


async def _store_breaker(client: TableClient, row: TableEntity | None,
                         places: list[tuple[datetime, str]]) -> bool:
    """Write the places; False when another writer got there first."""
    doc = _parts(json.dumps([[at.isoformat(), case_id] for at, case_id in places]),
                 "the reset breaker")
    entity = {"PartitionKey": _BREAKER_KEY[0], "RowKey": _BREAKER_KEY[1], **doc}
    try:
        if row is None:
            await client.create_entity(entity)
        else:
            await client.update_entity(entity, mode=UpdateMode.REPLACE,
                                       etag=row.metadata["etag"],
                                       match_condition=MatchConditions.IfNotModified)
    except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
        return False
    except HttpResponseError as error:
        if error.status_code in (409, 412):
            return False
        raise
    return True


async def _insert(client: TableClient, row: Entity) -> None:
    """Create a row that may already exist with the same content (index rows)."""
    with suppress(ResourceExistsError):
        await client.create_entity(row)


def _case_entity(case: Case) -> Entity:
    doc = _parts(json.dumps(case.to_dict()), f"case {case.case_id}")
    return {"PartitionKey": _case_key(case.case_id), "RowKey": _CASE_ROW, "user": case.user,
            "state": case.state.value, "version": case.version,
            "created_at": _utc(case.created_at), "updated_at": _utc(case.updated_at), **doc}


def _step_entity(case_id: str, step: Step) -> Entity:
    doc = _parts(json.dumps(step.to_dict()), f"step {step.name} of case {case_id}")
    row_key = f"step-{_ticker.next():020d}-{secrets.token_hex(4)}"
    return {"PartitionKey": _case_key(case_id), "RowKey": row_key, "name": step.name,
            "status": step.status.value, **doc}


def _index_entities(case: Case) -> list[Entity]:
    created, inserted = _micros(case.created_at), _ticker.next()
    suffix = _escape(case.case_id)
    return [
        {"PartitionKey": _user_key(case.user), "case_id": case.case_id,
         "RowKey": f"{_INVERT - created:020d}-{_INVERT - inserted:020d}-{suffix}"},
        {"PartitionKey": _ALL_CASES, "case_id": case.case_id,
         "RowKey": f"{created:020d}-{inserted:020d}-{suffix}"},
    ]


def _case_from_rows(rows: list[TableEntity]) -> Case | None:
    case_rows = [row for row in rows if row["RowKey"] == _CASE_ROW]
    if not case_rows:
        return None
    step_rows = sorted((row for row in rows if row["RowKey"].startswith("step-")),
                       key=lambda row: str(row["RowKey"]))
    steps = tuple(Step.from_dict(json.loads(_joined(row))) for row in step_rows)
    return Case.from_dict(json.loads(_joined(case_rows[0])), steps)


def _parts(text: str, what: str) -> Entity:
    """Split JSON over ``doc``, ``doc_1``, ... so no property passes 64 KiB."""
    if len(text) > _PART_CHARS * _MAX_PARTS:
        raise PermanentError(f"{what} is {len(text)} characters of JSON; a Table Storage "
                             f"row holds at most {_PART_CHARS * _MAX_PARTS}")
    chunks = [text[start:start + _PART_CHARS] for start in range(0, len(text), _PART_CHARS)]
    return {("doc" if n == 0 else f"doc_{n}"): chunk for n, chunk in enumerate(chunks)}


def _joined(row: TableEntity) -> str:
    parts = [row["doc"]]
    while (part := row.get(f"doc_{len(parts)}")) is not None:
        parts.append(part)
    return "".join(parts)


def _batches(rows: list[Entity]) -> Iterator[list[Entity]]:
    """Group one partition's rows into transactions within the service's limits."""
    batch: list[Entity] = []
    size = 0
    for row in rows:
        row_size = sum(len(value) for value in row.values() if isinstance(value, str))
        if batch and (len(batch) == _BATCH_ENTITIES or size + row_size > _BATCH_CHARS):
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += row_size
    if batch:
        yield batch


def _case_key(case_id: str) -> str:
    return f"case:{_escape(case_id)}"


def _user_key(user: str) -> str:
    return f"user:{_escape(user)}"


def _request_key(request_id: str) -> str:
    return f"request:{_escape(request_id)}"


def _escape(value: str) -> str:
    """A key-safe, reversible spelling: anything but letters, digits and ``@.-_+`` becomes
    ``~XX`` per UTF-8 byte. Besides / \\ # ? and control characters (which Table keys
    forbid), this covers ' and %, which some Table and Azurite operations mishandle."""
    return "".join(char if char in _KEY_SAFE
                   else "".join(f"~{byte:02X}" for byte in char.encode()) for char in value)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _micros(value: datetime) -> int:
    return max(0, (_utc(value) - _EPOCH) // timedelta(microseconds=1))


class _Ticker:
    """Strictly increasing nanosecond stamps for this process, even if the clock stalls."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(time.time_ns(), self._last + 1)
            return self._last


_ticker = _Ticker()
