"""The hash chain's rows in the Table Storage journal (``TableJournal``): how a step's link and
the chain's head are stored in a case's partition, read back, and read by a writer.

- ``step-s{seq, 10 digits}``: a chained step, its number in the key and, for people browsing,
  in ``seq`` too, with ``prev`` and ``hash``; a row whose key is not its number's (``seq``
  edited, or properties moved between rows) reads with ``StepLink.stored_as`` set;
- ``chain``: the head (``seq``, ``hash``, ``record``, ``flaw``, ``digest``: ``ChainHead``;
  the last three absent when None, and in a head written before they existed).

A writer replaces the ``chain`` row under the ETag it read (or creates it), in the same
entity-group transaction as its step row or case row: of two writers, one wins, and the
other reads again.
"""

from contextlib import suppress
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableEntity, UpdateMode
from azure.data.tables.aio import TableClient

from remediation.domain.journal_head import Found, needs_rows
from remediation.domain.journal_links import GENESIS, UNREADABLE, CaseSeal, ChainHead, StepLink

Entity = dict[str, Any]

CASE_ROW = "case"
CHAIN_ROW = "chain"  # the case's hash chain head, in its partition
_CHAINED_STEPS = ("step-s", "step-t")  # RowKey range of the chained step rows
_HEAD_EXTRAS = ("record", "flaw", "digest")


def step_key(seq: int) -> str:
    """The RowKey of chained step number ``seq``."""
    return f"{_CHAINED_STEPS[0]}{seq:010d}"


def head_entity(partition: str, head: ChainHead) -> Entity:
    extras = {name: getattr(head, name) for name in _HEAD_EXTRAS
              if getattr(head, name) is not None}
    return {"PartitionKey": partition, "RowKey": CHAIN_ROW, "seq": head.seq,
            "hash": head.hash, **extras}


def head_write(partition: str, head: ChainHead,
               row: TableEntity | None) -> tuple[Any, ...]:
    """The transaction operation that stores ``head``: replace ``row`` (the ``chain`` row as
    read) if unchanged since, or create it when there was none."""
    entity = head_entity(partition, head)
    if row is None:
        return ("create", entity)
    return ("update", entity, {"mode": UpdateMode.REPLACE, "etag": row.metadata["etag"],
                               "match_condition": MatchConditions.IfNotModified})


def head_of(row: TableEntity | None) -> ChainHead | None:
    """The head a ``chain`` row records (None: no row); one edited into something that is
    no head's reads as a head that matches no step."""
    if row is None:
        return None
    try:
        return ChainHead(int(row["seq"]), str(row["hash"]),
                         *(_text(row.get(name)) for name in _HEAD_EXTRAS))
    except (KeyError, TypeError, ValueError):
        return ChainHead(0, UNREADABLE)


def link_of(row: TableEntity) -> StepLink | None:
    """A step row's link (None: written before the chain, or edited into no link), with
    ``stored_as`` its RowKey when that is not its number's."""
    if row.get("hash") is None:
        return None
    try:
        seq = int(row["seq"])
        key = str(row["RowKey"])
        return StepLink(seq, str(row.get("prev") or GENESIS), str(row["hash"]),
                        None if key == step_key(seq) else key)
    except (KeyError, TypeError, ValueError):
        return None


async def found(client: TableClient, partition: str, head_row: TableEntity | None, *,
                rows: bool, case_row: TableEntity | None = None) -> Found:
    """What a writer reads of a case's chain (``journal_head.Found``): the head of
    ``head_row``; the chained step rows when ``rows`` (a lost race) or ``needs_rows``; the
    record's seal of ``case_row`` (the case row as read, with its ``seal``), or, not given,
    read from the table when there is no head."""
    head = head_of(head_row)
    last: ChainHead | None = None
    first: str | None = None
    if rows or needs_rows(head):
        async for row in client.query_entities(
                "PartitionKey eq @pk and RowKey ge @first and RowKey lt @after",
                parameters={"pk": partition, "first": _CHAINED_STEPS[0],
                            "after": _CHAINED_STEPS[1]},
                select=["RowKey", "seq", "prev", "hash"], results_per_page=1000):
            link = link_of(row)
            if link is None:
                continue
            first = link.prev if first is None else first
            if last is None or link.seq > last.seq:
                last = ChainHead(link.seq, link.hash)
    if case_row is None and head is None:
        with suppress(ResourceNotFoundError):
            case_row = await client.get_entity(partition, CASE_ROW, select=["seal"])
    seal = None if case_row is None else case_row.get("seal")
    return Found(head, last, first, CaseSeal.from_json(str(seal) if seal else None))


def _text(value: object) -> str | None:
    return None if value is None else str(value)
