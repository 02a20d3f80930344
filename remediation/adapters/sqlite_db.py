"""A small async front for SQLite: each call runs in a worker thread, never in the event loop.

Several processes may share one file (workers, the CLI), so writes take the database lock
up front (BEGIN IMMEDIATE) and wait for it instead of failing mid-transaction.
"""

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

T = TypeVar("T")

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # Windows: SQLite's busy handler alone
    fcntl = None

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    seal TEXT  -- the record's CaseSeal as JSON (domain.journal_chain); NULL: written before
);
CREATE INDEX IF NOT EXISTS cases_by_user ON cases (user, created_at);
-- Newest first (status): julianday() reads the stored ISO times with their UTC offsets.
CREATE INDEX IF NOT EXISTS cases_newest ON cases (julianday(created_at));
CREATE INDEX IF NOT EXISTS cases_by_state ON cases (state, julianday(created_at));
CREATE TABLE IF NOT EXISTS case_requests (
    request_id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    case_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    doc TEXT NOT NULL,
    prev TEXT,  -- the hash chain (domain.journal_chain): the previous chained step's hash
    hash TEXT,  -- and this step's; both NULL for a step written before the chain
    PRIMARY KEY (case_id, seq)
);
-- The head of each case's hash chain: the last chained step's number and hash, written in
-- the transaction that writes that step (a step deleted from the end shows against it), and
-- again in the one that writes the case record: the record's seal hash (an earlier copy of
-- the record put back shows), the first flaw a writer found, the head's own digest
-- (domain.journal_links.ChainHead; the last three NULL in a head written before them).
CREATE TABLE IF NOT EXISTS chain_heads (
    case_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    record TEXT,
    flaw TEXT,
    digest TEXT
);
CREATE TABLE IF NOT EXISTS messages (
    sequence_number INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    session_id TEXT,
    body BLOB NOT NULL,
    properties TEXT NOT NULL DEFAULT '{}',
    enqueued_at REAL NOT NULL,
    visible_at REAL NOT NULL,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    locked_until REAL,
    lock_token TEXT,
    state TEXT NOT NULL DEFAULT 'active',
    dead_letter_reason TEXT,
    dead_letter_description TEXT,
    settled_at REAL
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, state, visible_at);
CREATE INDEX IF NOT EXISTS messages_by_id ON messages (queue, message_id);
-- The current block episode of each directory object (the user's object id): a new case
-- takes it over only from the case a worker saw there (compare and set, under BEGIN
-- IMMEDIATE), so two requests naming one person can never both open a case.
CREATE TABLE IF NOT EXISTS episodes (
    user_id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL
);
-- Steps that must never run twice at once (the password reset): one holder per lease.
CREATE TABLE IF NOT EXISTS step_claims (
    case_id TEXT NOT NULL,
    step TEXT NOT NULL,
    holder TEXT NOT NULL,
    until INTEGER NOT NULL,  -- microseconds since the epoch, UTC
    PRIMARY KEY (case_id, step)
);
CREATE TABLE IF NOT EXISTS reset_places (
    case_id TEXT PRIMARY KEY,
    reserved_at INTEGER NOT NULL  -- microseconds since the epoch, UTC
);
-- The kill switch (``remediation pause``): one row, domain.pause.KillSwitch as JSON, read
-- at the start of every delivery and written in one write transaction.
CREATE TABLE IF NOT EXISTS kill_switch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    doc TEXT NOT NULL
);
-- What each source of the poll (alerts, the Restricted users sweep) last did: its last
-- success and its last failure with the reason, as SourceHealth JSON.
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
"""
# Columns added since the first schema: a file written before gets them when a writer opens
# it (``status`` opens files read-only and reads around their absence).
_ADDED_COLUMNS = {"steps": ("prev TEXT", "hash TEXT"), "cases": ("seal TEXT",),
                  "chain_heads": ("record TEXT", "flaw TEXT", "digest TEXT")}


GROUP_LIMIT = 64  # writes at most in one transaction of the writer thread

_Outcome = tuple[bool, Any]  # (True, what the work returned) or (False, what it raised)
_Write = tuple[Callable[[sqlite3.Connection], T], "asyncio.Future[T]",
               asyncio.AbstractEventLoop]


CLOSE_WAIT = 30.0  # seconds close() waits for work still running in threads (busy_timeout)


class SqliteDatabase:
    def __init__(self, path: Path | str, *, read_only: bool = False) -> None:
        """``read_only``: open an existing file for reading only (``status``): nothing is
        created, not even the file (a missing one raises ``sqlite3.OperationalError``)."""
        self.path = Path(path)
        self.read_only = read_only
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._ready = False
        # Work still running in a thread: close() waits for it. A task cancelled while its
        # work runs in a thread (asyncio.to_thread cannot stop it) leaves the work running,
        # and closing its connection under it crashes SQLite (a segfault, not an error).
        self._busy = 0
        self._idle = threading.Condition(self._guard)
        self._turns: list[int] = []  # each thread's descriptor of the writers' lock file
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._pending: list[_Write[Any]] = []  # writes waiting for the writer thread
        self._draining = False  # the writer thread has them in hand
        self._closed = False  # close() closed them: a later call keeps nothing open

    async def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self._read, work)

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` in a write transaction, on this database's writer thread; answered once
        committed. The writes waiting meanwhile share the next transaction (group commit),
        each in a savepoint of its own: one that raises is undone alone, and the others
        run after it as if one after another. Under a burst, one write at a time cost 3 ms
        of the writer thread each, and writes waited 62 ms at p50 in its queue
        (docs/BENCHMARKS.md). A write whose caller is cancelled before the writer thread
        takes it is not made."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._guard:
            self._pending.append((work, future, loop))
            start, self._draining = not self._draining, True
        if start:
            self._writer.submit(self._drain)
        return await future

    async def rehearse(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` as a write and roll it back: proves the write would be taken (the
        file writable, the row accepted) and leaves nothing, not even for a reader meanwhile."""
        return await asyncio.to_thread(self._rehearse, work)

    async def check_writable(self) -> None:
        """Prove a write would be taken (the file opens as SQLite, its schema is in place, a
        row can be written) and leave nothing; sqlite3.Error or OSError says why not."""
        await self.rehearse(lambda connection: connection.execute(
            "INSERT OR REPLACE INTO sources (source, doc) VALUES ('~writable', '{}')"))

    def close(self) -> None:
        """Close every connection, once the work running in threads and the writes already
        asked have ended (at most ``CLOSE_WAIT`` seconds: after that the connections are
        left to the process's end). What is asked afterwards still runs, on a connection of
        its own that is closed as it ends: nothing of the file stays open."""
        with self._guard:
            if not self._idle.wait_for(lambda: self._busy == 0 and not self._draining,
                                       timeout=CLOSE_WAIT):
                return
            self._closed = True
            for connection in self._connections:
                connection.close()
            self._connections.clear()
            for turn in self._turns:
                os.close(turn)
            self._turns.clear()
            self._local = threading.local()
            # Its thread ends; a write after close() starts a new one.
            self._writer.shutdown(wait=False)
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` in a read transaction (writes go through ``_commit``)."""
        with self._working():
            connection = self._connection()
            connection.execute("BEGIN")
            try:
                result = work(connection)
            except BaseException:
                if connection.in_transaction:  # SQLite may have rolled it back (I/O error)
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return result

    def _drain(self) -> None:
        """The writer thread: commit what waits, a batch at a time, until nothing does."""
        while True:
            with self._guard:
                # A caller cancelled meanwhile was told its write failed: it is not made.
                waiting = [write for write in self._pending if not write[1].done()]
                batch, self._pending = waiting[:GROUP_LIMIT], waiting[GROUP_LIMIT:]
                if not batch:
                    self._draining = False
                    self._idle.notify_all()  # close() may be waiting for the queue
                    return
            outcomes = self._commit([work for work, _, _ in batch])
            for (_, future, loop), outcome in zip(batch, outcomes, strict=True):
                with contextlib.suppress(RuntimeError):  # its event loop is closed
                    loop.call_soon_threadsafe(_settle, future, outcome)

    def _commit(self, works: list[Callable[[sqlite3.Connection], Any]]) -> list[_Outcome]:
        """Run ``works`` in one transaction, each in a savepoint; what each returned or
        raised. A failure of the transaction itself (BEGIN, COMMIT) is every work's."""
        outcomes: list[_Outcome] = []
        try:
            with self._working():
                connection = self._connection()
                with self._write_turn():
                    connection.execute("BEGIN IMMEDIATE")
                    try:
                        for work in works:
                            outcomes.append(_in_savepoint(connection, work))
                        connection.execute("COMMIT")
                    except BaseException:
                        with contextlib.suppress(sqlite3.Error):
                            connection.execute("ROLLBACK")
                        raise
        except BaseException as error:  # never out of the writer thread: later writes wait
            return [(False, error)] * len(works)
        return outcomes

    def _rehearse(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._working():
            connection = self._connection()
            with self._write_turn():
                connection.execute("BEGIN IMMEDIATE")
                try:
                    return work(connection)
                finally:
                    if connection.in_transaction:  # SQLite may have rolled it back (disk full)
                        connection.execute("ROLLBACK")

    @contextmanager
    def _working(self) -> Iterator[None]:
        with self._guard:
            self._busy += 1
        try:
            yield
        finally:
            with self._guard:
                self._busy -= 1
                if self._closed:  # a call after close(): it keeps nothing open
                    self._let_go()
                self._idle.notify_all()

    def _let_go(self) -> None:
        """Close this thread's connection and lock file descriptor (under ``_guard``)."""
        connection: sqlite3.Connection | None = self._local.__dict__.pop("connection", None)
        if connection is not None:
            connection.close()
            self._connections.remove(connection)
        turn: int | None = self._local.__dict__.pop("turn", None)
        if turn is not None:
            os.close(turn)
            self._turns.remove(turn)

    @contextmanager
    def _write_turn(self) -> Iterator[None]:
        """This thread's turn to write, across threads and processes (the module's note)."""
        turn: int | None = getattr(self._local, "turn", None)
        if fcntl is None:
            yield
            return
        if turn is None:
            turn = os.open(f"{self.path}-writer", os.O_RDWR | os.O_CREAT, 0o600)
            self._local.turn = turn
            with self._guard:
                self._turns.append(turn)
        _wait_for_turn(turn, self.path)
        try:
            yield
        finally:
            fcntl.flock(turn, fcntl.LOCK_UN)

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            if self.read_only:
                connection = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro",
                                             uri=True, timeout=30, isolation_level=None,
                                             check_same_thread=False)
            else:
                _create_owner_only(self.path)
                connection = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                             check_same_thread=False)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA busy_timeout=30000")
            if not self.read_only:
                _enable_wal(connection)
            with self._guard:
                if not self._ready and not self.read_only:
                    connection.executescript(_SCHEMA)
                    _add_columns(connection)
                    self._ready = True
                self._connections.append(connection)
            self._local.connection = connection
        return connection


TURN_WAIT = 30.0  # seconds a writer waits for its turn, as SQLite's busy_timeout


def _wait_for_turn(turn: int, path: Path) -> None:
    """Take the writers' lock file (``turn``, a descriptor of it), waiting at most TURN_WAIT
    seconds, then fail as SQLite does ("database is locked"): a writer stopped while it
    holds its turn (Ctrl-Z) must not hang every other one. Checked in steps of 1-10 ms,
    not the busy handler's 100 ms; the lock itself is held under a millisecond."""
    assert fcntl is not None
    deadline, pause = time.monotonic() + TURN_WAIT, 0.001
    while True:
        try:
            fcntl.flock(turn, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError(
                    f"database is locked: another writer of {path.name} held it "
                    f"{TURN_WAIT:.0f} s") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.01)


def _in_savepoint(connection: sqlite3.Connection,
                  work: Callable[[sqlite3.Connection], Any]) -> _Outcome:
    """``work`` in a savepoint: undone alone when it raises an Exception, unless SQLite
    rolled the whole transaction back on its error (SQLITE_FULL, SQLITE_IOERR, SQLITE_BUSY,
    SQLITE_NOMEM: "Response To Errors Within A Transaction",
    https://www.sqlite.org/lang_transaction.html): then that error is every work's."""
    connection.execute("SAVEPOINT work")
    try:
        result = work(connection)
    except Exception as error:
        if not connection.in_transaction:  # nothing is left to roll back to
            raise
        connection.execute("ROLLBACK TO work")
        connection.execute("RELEASE work")
        return (False, error)
    connection.execute("RELEASE work")
    return (True, result)


def _settle(future: "asyncio.Future[Any]", outcome: _Outcome) -> None:
    if future.done():  # its caller was cancelled: the write is made, nobody waits for it
        return
    succeeded, value = outcome
    if succeeded:
        future.set_result(value)
    else:
        future.set_exception(value)


def _add_columns(connection: sqlite3.Connection) -> None:
    """Give a file written by an earlier version the columns added since (``_ADDED_COLUMNS``),
    in one write transaction: of two processes opening it at once, the second finds them."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        for table, columns in _ADDED_COLUMNS.items():
            present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
            for column in columns:
                if column.split()[0] not in present:
                    connection.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _create_owner_only(path: Path) -> None:
    """The journal says who was reset and what their mailbox held: a directory we create is
    0700 and a file we create 0600, whatever the umask; SQLite gives its ``-wal`` and ``-shm``
    files the database file's mode. Existing ones are left as they are."""
    try:
        path.parent.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except FileNotFoundError:  # missing parents: they get the default mode, as mkdir -p
        path.parent.parent.mkdir(parents=True, exist_ok=True)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.parent.chmod(0o700)
    else:
        path.parent.chmod(0o700)  # mkdir's mode passes through the umask
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(descriptor)


def _enable_wal(connection: sqlite3.Connection, attempts: int = 100) -> None:
    """Switch to WAL; on a fresh file SQLite answers 'locked' at once instead of waiting."""
    for attempt in range(attempts):
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.05)
