"""The case journal in Azure Table Storage: the Azure twin of SqliteJournal, in one table.

Layout (PartitionKey / RowKey):

- ``case:{case id}`` / ``case``: the case as JSON (``doc``, ``doc_1``, ...), plus ``user``,
  ``state``, ``version``, ``created_at`` and ``updated_at`` for people browsing the table,
  ``names`` (its ``known_as``, space-separated) for ``users_known_as``, and ``seal`` (the
  record's ``CaseSeal`` as JSON, ``domain.journal_chain``; absent: written before the chain);
- ``case:{case id}`` / ``step-s{seq, 10 digits}``: one row per step (``doc``..., ``name``,
  ``status``) with its place in the case's hash chain (``seq``, ``prev``, ``hash``), inserted
  (never upserted) in one transaction with the ``chain`` row: the key is the step's number,
  so of two writers appending at once one wins it and the other reads the head again;
- ``case:{case id}`` / ``chain``: the chain's head (``seq``, ``hash`` of its last step,
  ``record``, ``flaw``, ``digest``: ``adapters.table_chain``), replaced under its ETag with
  every step and every write of the case row, in the same transaction;
- ``case:{case id}`` / ``step-{ns}-{random}``: a step written before the chain (no hash),
  sorting by time of writing, before every chained step;
- ``user:{user}`` / ``{created, newest first}-{insertion, newest first}-{case id}``: an index
  row per case, for ``latest_case`` and ``list_cases(user)`` (moved, same row key, when a
  case opened under another name takes the account's primary address);
- ``cases`` / ``{created}-{insertion}-{case id}``: every case oldest first (for people browsing
  the table: ``list_cases()`` scans the case rows instead, which carry the state and the time
  the service filters on, and keeps the newest in a bounded heap);
- ``request:{request id}`` / ``case``: the case a request was first recorded in;
- ``episode:{user object id}`` / ``case``: the case holding the account's current block
  episode, inserted (fails if it exists) or replaced under its ETag, so two workers opening a
  case for one person cannot both win;
- ``case:{case id}`` / ``claim-{step}``: who holds a step that must never run twice at once
  (the password reset) and until when;
- ``working`` / ``{case id}``: one row per case in a working state, written before the case
  and deleted when it ends, for ``working_cases`` (the sweeper);
- ``schema`` / ``working``: the marker that the ``working`` partition holds every working
  case (``version``): journals written before it was kept get their rows on the first
  ``working_cases`` call that finds no marker;
- ``breaker`` / ``resets``: the reset circuit breaker, the recent ``[time, case id]`` pairs
  as JSON, replaced under its ETag so concurrent workers cannot both take the last place;
- ``breaker`` / ``pause``: the kill switch (``domain.pause.KillSwitch`` as JSON: the pause in
  force and the last one lifted), read at the start of every delivery and replaced under its
  ETag, so of two people pausing at once the first one's pause stands;
- ``source`` / ``{source}``: a source of the poll (``alerts``, ``restricted_users``), its last
  success and last failure with the reason as JSON, replaced under its ETag so an outcome
  another worker wrote meanwhile is merged, never overwritten.

The case partition is written first (in one transaction), then the index rows, so an index
row never points at a case that was never stored; a failure in between leaves a case that
only ``get_case`` finds, and the redelivered request opens a new one.
"""

import asyncio
import heapq
import json
import random
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableEntity, TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient

from remediation.adapters.credentials import token_failure
from remediation.adapters.table_chain import (
    CASE_ROW,
    CHAIN_ROW,
    found,
    head_entity,
    head_of,
    head_write,
    link_of,
    step_key,
)
from remediation.config import ConfigError
from remediation.domain.case_states import WORKING, check_opening, check_transition
from remediation.domain.cases import Case, CaseState, Step
from remediation.domain.errors import ConcurrentUpdate, PermanentError, TransientError
from remediation.domain.journal_head import (
    case_opened,
    continuing,
    record_written,
    steps_written,
)
from remediation.domain.journal_links import CaseSeal, StepLink
from remediation.domain.pause import KillSwitch, Paused
from remediation.domain.sources import SourceHealth

Entity = dict[str, Any]

_CASE_ROW = CASE_ROW
_CHAIN_ROW = CHAIN_ROW
# A lost append means another writer took the number: within one journal object appends to
# a case wait their turn, so losses come from other processes only.
_APPEND_ATTEMPTS = 20
_APPEND_BACKOFF = 0.02
_NAMES_LIMIT = 32000  # characters in one string property (64 KiB of UTF-16)
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
_KILL_SWITCH_KEY = ("breaker", "pause")
_SOURCES = "source"
# One row per working case (RowKey: the escaped case id), so the sweeper reads only them.
_WORKING = "working"
# The index is complete once this row says so; version 1: every working case has its row.
_WORKING_MARKER = ("schema", "working")
_WORKING_INDEX_VERSION = 1
_CLAIM_ATTEMPTS = 5  # each lost round means another writer changed the row: read it again
# A source's row takes every poll's outcome, from every instance at once: a writer that loses
# a round reads again, and an outcome older than the row's is done without a write.
_SOURCE_ATTEMPTS = 20
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
        self._working_indexed = False
        self._index_lock = asyncio.Lock()
        self._appends: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    async def close(self) -> None:
        await self._client.close()
        if self._owned_credential is not None:
            await self._owned_credential.close()

    async def add_case(self, case: Case) -> None:
        check_opening(case.case_id, case.state)
        client = await self._table()
        links, seal, head = case_opened(case)
        rows = [_case_entity(case, seal),
                *(_step_entity(case.case_id, step, link)
                  for step, link in zip(case.steps, links, strict=True)),
                head_entity(_case_key(case.case_id), head)]
        if case.state in WORKING:  # first: a working case is never missing from the index
            with _translated(f"indexing working case {case.case_id}"):
                await client.upsert_entity(_working_entity(case.case_id))
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
        """Replace the case row under its ETag and the ``chain`` row under its own, in one
        transaction; a step appended meanwhile (the head moved, the record not) reads the
        head again and tries again. ConcurrentUpdate when the record changed since read."""
        client = await self._table()
        stored = case.evolve(version=case.version + 1)
        key = _case_key(case.case_id)
        moved: list[Entity] | None = None
        with _translated(f"updating case {case.case_id}"):
            for attempt in range(_APPEND_ATTEMPTS):
                current, head_row = await _case_and_head(client, case.case_id)
                if current is None:
                    raise ConcurrentUpdate(f"case {case.case_id} does not exist")
                if current.get("version") != case.version:
                    raise ConcurrentUpdate(f"case {case.case_id} changed since it was read")
                # The ETag below makes the state read here the state replaced.
                check_transition(case.case_id, CaseState(current["state"]), stored.state)
                renamed = current.get("user") not in (None, stored.user)
                if renamed and moved is None:  # opened under another name: index it anew
                    moved = await _copy_user_index(client, stored, str(current["user"]))
                seal, head = record_written(stored, await found(
                    client, key, head_row, rows=attempt > 0, case_row=current))
                try:
                    await client.submit_transaction([
                        ("update", _case_entity(stored, seal),
                         {"mode": UpdateMode.REPLACE, "etag": current.metadata["etag"],
                          "match_condition": MatchConditions.IfNotModified}),
                        head_write(key, head, head_row)])
                    break
                except TableTransactionError as error:
                    if error.status_code not in (404, 409, 412):
                        raise
                await asyncio.sleep(random.uniform(0, _APPEND_BACKOFF * (attempt + 1)))  # noqa: S311
            else:
                raise ConcurrentUpdate(f"case {case.case_id} kept changing under concurrent "
                                       "writers")
            if moved is not None:
                for row in moved:
                    with suppress(ResourceNotFoundError):
                        await client.delete_entity(row["PartitionKey"], row["RowKey"])
            if stored.state not in WORKING and current.get("state") in _WORKING_VALUES:
                with suppress(ResourceNotFoundError):  # left behind, working_cases drops it
                    await client.delete_entity(_WORKING, _escape(case.case_id))
        await self._record_requests(stored)
        return stored.evolve(seal=seal, chain_head=head)

    async def add_step(self, case_id: str, step: Step) -> None:
        """Append ``step`` as the case's next chained step: one transaction inserts its row,
        keyed by its number (so it fails if another writer took that number), and replaces
        the ``chain`` row under the ETag read (so it fails if a step or a record write moved
        it meanwhile); a lost race reads the head again (and the rows, in case the head was
        left behind) and tries the next number. TransientError when other writers kept
        winning."""
        await self.add_steps(case_id, [step])

    async def add_steps(self, case_id: str, steps: Sequence[Step]) -> None:
        """``add_step`` for one or more steps: their rows and the head in one transaction
        (``_BATCH_ENTITIES`` operations at most, the head one of them)."""
        if not steps:
            raise ValueError("no steps to write")
        if len(steps) >= _BATCH_ENTITIES:
            raise ValueError(f"one write appends at most {_BATCH_ENTITIES - 1} steps, not "
                             f"{len(steps)}")
        client = await self._table()
        key = _case_key(case_id)
        names = ", ".join(step.name for step in steps)
        async with self._appending(case_id):
            for attempt in range(_APPEND_ATTEMPTS):
                with _translated(f"adding step {names} to case {case_id}"):
                    head_row = await _get(client, key, _CHAIN_ROW)
                    links, head = steps_written(case_id, steps, continuing(
                        case_id, await found(client, key, head_row, rows=attempt > 0)))
                    try:
                        await client.submit_transaction([
                            *(("create", _step_entity(case_id, step, link))
                              for step, link in zip(steps, links, strict=True)),
                            head_write(key, head, head_row)])
                        return
                    except TableTransactionError as error:
                        if error.status_code not in (404, 409, 412):
                            raise
                await asyncio.sleep(random.uniform(0, _APPEND_BACKOFF * (attempt + 1)))  # noqa: S311
        raise TransientError(f"the steps of case {case_id} kept changing under concurrent "
                             "writers; try again later")

    @asynccontextmanager
    async def _appending(self, case_id: str) -> AsyncIterator[None]:
        """One append at a time per case within this journal object (the lock is dropped
        when nobody holds or waits for it)."""
        lock, users = self._appends.setdefault(case_id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._appends[case_id]

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
                # An index row left under a name the case no longer has is not this user's;
                # a request refused at the door named nobody for sure (a person's reject
                # counts, as in SqliteJournal).
                if (case is not None and case.user == user
                        and (case.state is not CaseState.REJECTED or case.decided_by)):
                    return case
        return None

    async def current_episode(self, user_id: str) -> str | None:
        client = await self._table()
        with _translated("reading a user's current episode"):
            row = await _get(client, _episode_key(user_id), _CASE_ROW)
        return None if row is None else str(row["case_id"])

    async def claim_episode(self, user_id: str, case_id: str, replaces: str | None) -> str:
        """Insert the episode row (fails if it exists) or replace it under its ETag: a lost
        race reads the row again and names the winner."""
        client = await self._table()
        key = _episode_key(user_id)
        entity = {"PartitionKey": key, "RowKey": _CASE_ROW, "case_id": case_id}
        for _ in range(_CLAIM_ATTEMPTS):
            with _translated("claiming a user's block episode"):
                row = await _get(client, key, _CASE_ROW)
                if row is not None and row["case_id"] not in (replaces, case_id):
                    return str(row["case_id"])  # another worker took the episode first
                if row is not None and row["case_id"] == case_id:
                    return case_id
                if await _create_or_replace(client, entity, row):
                    return case_id
        raise TransientError(f"the block episode of {user_id} kept changing under concurrent "
                             "writers; try again later")

    async def claim_step(self, case_id: str, step: str, holder: str, now: datetime,
                         lease: timedelta) -> bool:
        client = await self._table()
        key, row_key = _case_key(case_id), _claim_row(step)
        entity = {"PartitionKey": key, "RowKey": row_key, "holder": holder,
                  "until": _utc(now + lease)}
        for _ in range(_CLAIM_ATTEMPTS):
            with _translated(f"claiming step {step} of case {case_id}"):
                row = await _get(client, key, row_key)
                if (row is not None and row["holder"] != holder
                        and _utc(row["until"]) > _utc(now)):
                    return False
                if await _create_or_replace(client, entity, row):
                    return True
        return False  # other writers kept taking it

    async def release_step(self, case_id: str, step: str, holder: str) -> None:
        client = await self._table()
        key, row_key = _case_key(case_id), _claim_row(step)
        with _translated(f"releasing step {step} of case {case_id}"):
            row = await _get(client, key, row_key)
            if row is None or row["holder"] != holder:
                return
            with suppress(ResourceModifiedError, ResourceNotFoundError):
                await client.delete_entity(key, row_key, etag=row.metadata["etag"],
                                           match_condition=MatchConditions.IfNotModified)

    async def list_cases(self, user: str | None = None, *,
                         states: Collection[CaseState] | None = None,
                         since: datetime | None = None,
                         limit: int | None = None) -> list[Case]:
        """Table Storage sorts by key only, never newest first: everyone's cases come from a
        scan of the case rows (the service filters by state and time; only keys and times
        come back), kept in a heap of ``limit`` entries; one user's from their index
        partition, which is newest first already. Of two cases created in the same
        microsecond, the scan puts the greater case id first."""
        if (limit is not None and limit <= 0) or (states is not None and not states):
            return []
        if user is not None:
            return await self._user_cases(user, states, since, limit)
        newest = await self._scan_newest(states, since, limit)
        return await self._load_many([_case_id_of(key) for _, key in newest])

    async def working_cases(self) -> list[Case]:
        """From the ``working`` index partition: one row per case not final yet, so the
        cost follows the working cases, never the journal's history. A journal written
        before the index was kept is indexed first (``_index_working_cases``, once). A row
        whose case has ended (a backfill that raced the worker ending it) is deleted."""
        client = await self._table()
        await self._index_working_cases(client)
        with _translated("listing working cases"):
            ids = [_case_id_of(str(row["RowKey"])) async for row in client.query_entities(
                "PartitionKey eq @pk", parameters={"pk": _WORKING}, select=["RowKey"],
                results_per_page=1000)]
        loaded = await self._load_many(ids)
        ended = [case.case_id for case in loaded if case.state not in WORKING]
        with _translated("clearing ended cases from the working index"):
            for case_id in ended:  # a final state never changes: the row is never needed
                with suppress(ResourceNotFoundError):
                    await client.delete_entity(_WORKING, _escape(case_id))
        cases = [case for case in loaded if case.state in WORKING]
        return sorted(cases, key=lambda case: case.created_at, reverse=True)

    async def _index_working_cases(self, client: TableClient) -> None:
        """Make sure every working case has its ``working`` row, once per journal object:
        when the table has no marker (``schema`` / ``working``, a journal written before
        the sweeper), scan the case rows in a working state (a service-side filter on
        ``state``, which every case row has carried from the start), create the missing
        rows, then write the marker. Idempotent, and harmless when several workers do it
        at once: they create the same rows (an existing one is left as it is) and the same
        marker. A case that ends during the scan may get a row after its end; the next
        ``working_cases`` deletes it.

        Raises TransientError when Table Storage fails; the next call tries again."""
        if not self._working_indexed:
            async with self._index_lock:
                if not self._working_indexed:
                    with _translated("indexing the working cases"):
                        marker = await _get(client, *_WORKING_MARKER)
                        if marker is None or marker.get("version") != _WORKING_INDEX_VERSION:
                            await _backfill_working_index(client)
                    self._working_indexed = True

    async def count_cases(self, user: str | None = None, *,
                          since: datetime | None = None) -> dict[CaseState, int]:
        counts: Counter[CaseState] = Counter()
        if user is not None:
            for case in await self._user_cases(user, None, since, None):
                counts[case.state] += 1
            return dict(counts)
        client = await self._table()
        query, parameters = _case_rows_filter(None, since)
        with _translated("counting cases"):
            async for row in client.query_entities(query, parameters=parameters,
                                                   select=["state"], results_per_page=1000):
                counts[CaseState(row["state"])] += 1
        return dict(counts)

    async def users_known_as(self, name: str) -> frozenset[str]:
        """A scan of the case rows' ``user`` and ``names`` (rows written before ``names``
        was kept match by ``user`` only)."""
        client = await self._table()
        wanted = name.lower()
        query, parameters = _case_rows_filter(None, None)
        users: set[str] = set()
        with _translated("finding an account's cases"):
            async for row in client.query_entities(query, parameters=parameters,
                                                   select=["user", "names"],
                                                   results_per_page=1000):
                if wanted == row.get("user") or wanted in str(row.get("names") or "").split():
                    users.add(str(row["user"]))
        return frozenset(users)

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

    async def pause(self, paused: Paused) -> Paused:
        """Read the switch, and write it back only if nobody changed it since (ETag); a lost
        race reads again, and finds the other pause in force."""
        for _ in range(_CLAIM_ATTEMPTS):
            with _translated("pausing every worker"):
                row, switch = await self._kill_switch()
                if switch.paused is not None:
                    return switch.paused
                if await self._store_kill_switch(row, switch.pause(paused)):
                    return paused
        raise TransientError("the kill switch row kept changing under concurrent writers; "
                             "try again")

    async def resume(self, by: str, at: datetime) -> Paused | None:
        for _ in range(_CLAIM_ATTEMPTS):
            with _translated("resuming every worker"):
                row, switch = await self._kill_switch()
                if switch.paused is None:
                    return None
                if await self._store_kill_switch(row, switch.resume(by, at)):
                    return switch.paused
        raise TransientError("the kill switch row kept changing under concurrent writers; "
                             "try again")

    async def pause_state(self) -> Paused | None:
        with _translated("reading the kill switch"):
            return (await self._kill_switch())[1].paused

    async def _kill_switch(self) -> tuple[TableEntity | None, KillSwitch]:
        row = await _get(await self._table(), *_KILL_SWITCH_KEY)
        return row, (KillSwitch() if row is None
                     else KillSwitch.from_dict(json.loads(_joined(row))))

    async def _store_kill_switch(self, row: TableEntity | None, switch: KillSwitch) -> bool:
        entity = {"PartitionKey": _KILL_SWITCH_KEY[0], "RowKey": _KILL_SWITCH_KEY[1],
                  "paused": switch.paused is not None,
                  **_parts(json.dumps(switch.to_dict()), "the kill switch")}
        return await _create_or_replace(await self._table(), entity, row)

    async def record_source(self, source: str, at: datetime, failure: str | None = None) -> None:
        """Read the source's row, merge the outcome, and write it back only if nobody
        changed it since (ETag); a lost race reads again."""
        client = await self._table()
        key = _escape(source)
        for _ in range(_SOURCE_ATTEMPTS):
            with _translated(f"recording how reading {source} went"):
                row = await _get(client, _SOURCES, key)
                known = (SourceHealth(source) if row is None
                         else SourceHealth.from_dict(json.loads(_joined(row))))
                updated = known.with_outcome(_utc(at), failure)
                if updated == known:
                    return
                entity = {"PartitionKey": _SOURCES, "RowKey": key,
                          **_parts(json.dumps(updated.to_dict()), f"source {source}")}
                if await _create_or_replace(client, entity, row):
                    return
        raise TransientError(f"the row of source {source} kept changing under concurrent "
                             "writers; try again later")

    async def source_health(self) -> list[SourceHealth]:
        client = await self._table()
        with _translated("reading the sources' health"):
            rows = [row async for row in client.query_entities(
                "PartitionKey eq @pk", parameters={"pk": _SOURCES})]
        return [SourceHealth.from_dict(json.loads(_joined(row))) for row in rows]

    async def _scan_newest(self, states: Collection[CaseState] | None,
                           since: datetime | None,
                           limit: int | None) -> list[tuple[datetime, str]]:
        """(created, partition key) of the newest ``limit`` matching cases, newest first;
        memory holds ``limit`` of them at most (all when ``limit`` is None)."""
        client = await self._table()
        query, parameters = _case_rows_filter(states, since)
        kept: list[tuple[datetime, str]] = []  # a min-heap: the oldest kept one on top
        with _translated("listing cases"):
            async for row in client.query_entities(
                    query, parameters=parameters, select=["PartitionKey", "created_at"],
                    results_per_page=1000):
                entry = (_utc(row["created_at"]), str(row["PartitionKey"]))
                if limit is None:
                    kept.append(entry)
                elif len(kept) < limit:
                    heapq.heappush(kept, entry)
                elif entry > kept[0]:
                    heapq.heapreplace(kept, entry)
        return sorted(kept, reverse=True)

    async def _user_cases(self, user: str, states: Collection[CaseState] | None,
                          since: datetime | None, limit: int | None) -> list[Case]:
        """From the user's index partition (newest first), loaded a page at a time until
        ``limit`` match or the cases get older than ``since``."""
        client = await self._table()
        wanted = None if states is None else frozenset(states)
        cutoff = None if since is None else _micros(since)
        found: list[Case] = []
        page: list[str] = []

        async def load_page() -> bool:
            """Keep the matching cases of ``page``; True once ``limit`` are found."""
            for case in await self._load_many(page):
                # An index row left under a name the case no longer has is not this user's.
                if case.user == user and (wanted is None or case.state in wanted):
                    found.append(case)
                if limit is not None and len(found) >= limit:
                    return True
            page.clear()
            return False

        with _translated("listing a user's cases"):
            async for row in client.query_entities(
                    "PartitionKey eq @pk", parameters={"pk": _user_key(user)},
                    select=["RowKey", "case_id"], results_per_page=100):
                if cutoff is not None and _INVERT - int(str(row["RowKey"])[:20]) < cutoff:
                    break
                page.append(str(row["case_id"]))
                if len(page) >= _LOAD_CONCURRENCY and await load_page():
                    return found
            if page:
                await load_page()
        return found

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
                        try:
                            await self._client.create_table()
                        except HttpResponseError as error:
                            # A reader (Storage Table Data Reader: no tables/write) may not
                            # create a table; the deployment created it, and the reads say
                            # whether it is there.
                            if error.status_code != 403:
                                raise
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
    """Turn the SDK's transport, throttling and 5xx errors, and a credential that gives no
    token, into TransientError."""
    try:
        yield
    except ClientAuthenticationError as error:
        raise token_failure("Table Storage", error) from error
    except (ServiceRequestError, ServiceResponseError) as error:
        raise TransientError(f"Table Storage could not be reached while {action} "
                             f"({type(error).__name__})") from error
    except HttpResponseError as error:
        status = error.status_code or 0
        if status == 429 or status >= 500:
            answer = f"{status} {error.reason}" if error.reason else str(status)
            raise TransientError(f"Table Storage answered {answer} while {action}") from error
        raise


async def _backfill_working_index(client: TableClient) -> None:
    """Create the ``working`` row of every case row in a working state, then the marker."""
    query, parameters = _case_rows_filter(WORKING, None)
    ids = [_case_id_of(str(row["PartitionKey"])) async for row in client.query_entities(
        query, parameters=parameters, select=["PartitionKey"], results_per_page=1000)]
    gate = asyncio.Semaphore(_LOAD_CONCURRENCY)

    async def index(case_id: str) -> None:
        async with gate:
            await _insert(client, _working_entity(case_id))

    await asyncio.gather(*(index(case_id) for case_id in ids))
    await client.upsert_entity({"PartitionKey": _WORKING_MARKER[0],
                                "RowKey": _WORKING_MARKER[1],
                                "version": _WORKING_INDEX_VERSION, "indexed": len(ids)})


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
    return await _create_or_replace(client, entity, row)


async def _get(client: TableClient, partition: str, row: str) -> TableEntity | None:
    try:
        return await client.get_entity(partition, row)
    except ResourceNotFoundError:
        return None


async def _create_or_replace(client: TableClient, entity: Entity,
                             row: TableEntity | None) -> bool:
    """Create ``entity`` (when ``row`` was absent) or replace ``row`` if unchanged since read;
    False when another writer got there first."""
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


async def _copy_user_index(client: TableClient, case: Case, old_user: str) -> list[Entity]:
    """Index ``case`` under its new ``user`` with the row keys it had under ``old_user``
    (so a repeated copy writes the same rows); return the old rows, to delete once the case
    row says the new name."""
    old = [dict(row) async for row in client.query_entities(
        "PartitionKey eq @pk and case_id eq @id",
        parameters={"pk": _user_key(old_user), "id": case.case_id},
        select=["PartitionKey", "RowKey", "case_id"])]
    rows = [{**row, "PartitionKey": _user_key(case.user)} for row in old] or [
        _index_entities(case)[0]]
    for row in rows:
        await _insert(client, row)
    return old


async def _insert(client: TableClient, row: Entity) -> None:
    """Create a row that may already exist with the same content (index rows)."""
    with suppress(ResourceExistsError):
        await client.create_entity(row)


def _case_entity(case: Case, seal: CaseSeal) -> Entity:
    doc = _parts(json.dumps(case.to_dict()), f"case {case.case_id}")
    return {"PartitionKey": _case_key(case.case_id), "RowKey": _CASE_ROW, "user": case.user,
            "state": case.state.value, "version": case.version,
            "created_at": _utc(case.created_at), "updated_at": _utc(case.updated_at),
            "names": _names(case), "seal": seal.to_json(), **doc}


def _names(case: Case) -> str:
    """``known_as`` as one string property (at most 32K characters, Table Storage's limit):
    the names that fit, the case's own address first."""
    names, size = [case.user.lower()], len(case.user)
    for name in sorted(case.known_as - {case.user.lower()}):
        size += len(name) + 1
        if size > _NAMES_LIMIT:
            break
        names.append(name)
    return " ".join(names)


def _step_entity(case_id: str, step: Step, link: StepLink) -> Entity:
    doc = _parts(json.dumps(step.to_dict()), f"step {step.name} of case {case_id}")
    return {"PartitionKey": _case_key(case_id), "RowKey": step_key(link.seq),
            "name": step.name, "status": step.status.value, "seq": link.seq,
            "prev": link.prev, "hash": link.hash, **doc}


async def _case_and_head(client: TableClient,
                         case_id: str) -> tuple[TableEntity | None, TableEntity | None]:
    """The case row (``version``, ``user``, ``state``, ``seal`` and its ETag) and the
    ``chain`` row, in one query."""
    rows = [row async for row in client.query_entities(
        # Spaces around the parentheses: the SDK finds parameters between spaces.
        "PartitionKey eq @pk and ( RowKey eq @case or RowKey eq @chain )",
        parameters={"pk": _case_key(case_id), "case": _CASE_ROW, "chain": _CHAIN_ROW},
        select=["RowKey", "version", "user", "state", "seal", "seq", "hash", "record", "flaw",
                "digest"])]
    found = {str(row["RowKey"]): row for row in rows}
    return found.get(_CASE_ROW), found.get(_CHAIN_ROW)


def _index_entities(case: Case) -> list[Entity]:
    created, inserted = _micros(case.created_at), _ticker.next()
    suffix = _escape(case.case_id)
    return [
        {"PartitionKey": _user_key(case.user), "case_id": case.case_id,
         "RowKey": f"{_INVERT - created:020d}-{_INVERT - inserted:020d}-{suffix}"},
        {"PartitionKey": _ALL_CASES, "case_id": case.case_id,
         "RowKey": f"{created:020d}-{inserted:020d}-{suffix}"},
    ]


def _case_rows_filter(states: Collection[CaseState] | None,
                      since: datetime | None) -> tuple[str, dict[str, Any]]:
    """The case rows (not steps, not index rows) in ``states`` created at or after
    ``since``, as an OData filter with its parameters."""
    clauses = ["PartitionKey ge @first", "PartitionKey lt @after", "RowKey eq @row"]
    parameters: dict[str, Any] = {"first": "case:", "after": "case;", "row": _CASE_ROW}
    if states is not None:
        names = sorted({CaseState(state).value for state in states})
        parameters.update({f"s{n}": name for n, name in enumerate(names)})
        # Spaces around the parentheses: the SDK finds parameters between spaces.
        clauses.append("( " + " or ".join(f"state eq @s{n}" for n in range(len(names))) + " )")
    if since is not None:
        clauses.append("created_at ge @since")
        parameters["since"] = _utc(since)
    return " and ".join(clauses), parameters


def _case_id_of(partition_key: str) -> str:
    """The case id a ``case:`` partition key was made from (``_escape`` undone)."""
    escaped = partition_key.removeprefix("case:")
    raw = bytearray()
    position = 0
    while position < len(escaped):
        if escaped[position] == "~":
            raw.append(int(escaped[position + 1:position + 3], 16))
            position += 3
        else:
            raw += escaped[position].encode()
            position += 1
    return raw.decode()


def _case_from_rows(rows: list[TableEntity]) -> Case | None:
    case_rows = [row for row in rows if row["RowKey"] == _CASE_ROW]
    if not case_rows:
        return None
    step_rows = sorted((row for row in rows if row["RowKey"].startswith("step-")),
                       key=lambda row: str(row["RowKey"]))
    steps = tuple(replace(Step.from_dict(json.loads(_joined(row))), link=link_of(row))
                  for row in step_rows)
    head = next((row for row in rows if row["RowKey"] == _CHAIN_ROW), None)
    return Case.from_dict(json.loads(_joined(case_rows[0])), steps).evolve(
        chain_head=head_of(head), seal=CaseSeal.from_json(case_rows[0].get("seal")))


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


def _working_entity(case_id: str) -> Entity:
    return {"PartitionKey": _WORKING, "RowKey": _escape(case_id)}


_WORKING_VALUES = frozenset(state.value for state in WORKING)


def _case_key(case_id: str) -> str:
    return f"case:{_escape(case_id)}"


def _user_key(user: str) -> str:
    return f"user:{_escape(user)}"


def _request_key(request_id: str) -> str:
    return f"request:{_escape(request_id)}"


def _episode_key(user_id: str) -> str:
    return f"episode:{_escape(user_id)}"


def _claim_row(step: str) -> str:
    """A claim row sits in its case's partition; ``get_case`` reads only ``case`` and
    ``step-`` rows."""
    return f"claim-{_escape(step)}"


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
