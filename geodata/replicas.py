"""Read scale-out on PostgreSQL streaming replicas (只读副本), fenced by the data versions.

Reads (tiles, features, statistics, analyses) go to the replicas of `ONEMAP_READ_DATABASE_URL`
in turn; writes (imports, ingest, users, audit) always use the primary's engine. A replica lags
the primary by however long its WAL replay takes, so before a read is served there the router
compares the replica's `data_version` counters (migration 0002, replicated like any table) with a
*watermark*: the primary's counters as this process last read them.

- The watermark is re-read from the primary at most every `fence_s` seconds, and at once after
  this process commits a write (read-your-writes within a worker).
- A replica with any counter of the asked tables below the watermark is behind: the next replica
  is tried, and the primary answers when none is fresh enough.
- Caches key their entries by the data version read on the serving connection, so an entry made
  on a lagging replica carries its old version. Once the watermark passes that version no
  connection handed out reports it again, and the entry is never hit: it cannot outlive the
  primary's version by more than `fence_s` (and `fence_s` is also the bound on how stale a read
  can be).
- A replica that refuses connections is left out for `retry_s` seconds.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError

VERSIONS = text("SELECT table_name, version FROM data_version")
# Statements that may change data (a WITH may hold an INSERT; a false alarm costs one re-read).
WRITES = ("insert", "update", "delete", "copy", "truncate", "alter", "create", "drop", "with")


def server_name(engine: Engine) -> str:
    """host:port/database of an engine (for logs, tests and the bench)."""
    url = engine.url
    return f"{url.host}:{url.port}/{url.database}"


class ReadRouter:
    """Hands out connections for reads: a fresh-enough replica in turn, else the primary."""

    def __init__(self, primary: Engine, replicas: Iterable[Engine], *, fence_s: float = 1.0,
                 retry_s: float = 10.0):  # fmt: skip
        self.primary = primary
        self.replicas = list(replicas)
        self.fence_s = fence_s
        self.retry_s = retry_s
        self.served: Counter[str] = Counter()  # reads per server, for tests and the bench
        self._watermark: dict[str, int] = {}
        self._read_at = float("-inf")  # when the stored watermark's query started
        self._writes = 0  # committed writes of this process seen so far
        self._down_until: dict[int, float] = {}
        self._turn = 0
        self._lock = threading.Lock()
        if self.replicas:
            event.listen(primary, "before_cursor_execute", _note_write_statement)
            event.listen(primary, "commit", _note_commit)
            event.listen(primary, "checkin", self._after_commit)

    def _after_commit(self, dbapi_connection, record) -> None:
        """A connection back in the pool after committing a write: the watermark is re-read
        before the next read (the "commit" event fires before the database has committed, the
        check-in after it)."""
        if record is not None and record.info.pop("committed_write", False):
            with self._lock:
                self._writes += 1
                self._read_at = float("-inf")

    def watermark(self) -> dict[str, int]:
        """The primary's data-version counters, re-read when older than fence_s or after a write.

        A reading is kept only when no write of this process was committed while it ran and no
        later-started reading was stored first, so a slow reading never hides a newer write.
        """
        started = time.monotonic()
        if started - self._read_at < self.fence_s:
            return self._watermark
        writes = self._writes
        with self.primary.connect() as conn:
            mark = {t: v for t, v in conn.execute(VERSIONS)}
        with self._lock:
            if self._writes == writes and started >= self._read_at:
                self._watermark, self._read_at = mark, started
        return mark

    def candidates(self) -> list[Engine]:
        """The replicas not known to be down, starting with the next in turn."""
        with self._lock:
            start, self._turn = self._turn, self._turn + 1
        now = time.monotonic()
        n = len(self.replicas)
        order = [(start + i) % n for i in range(n)]
        return [self.replicas[i] for i in order if self._down_until.get(i, 0.0) <= now]

    @staticmethod
    def is_fresh(conn: Connection, mark: dict[str, int], tables: Iterable[str] | None) -> bool:
        """True when the replica has replayed every write of the watermark (for `tables`)."""
        have = {t: v for t, v in conn.execute(VERSIONS)}
        names = mark.keys() if tables is None else tables
        return all(have.get(t, 0) >= mark.get(t, 0) for t in names)

    def _open_replica(self, tables: Iterable[str] | None) -> Connection | None:
        """A connection to the first fresh replica in turn, or None (the primary's failure is
        the primary's: it never marks a replica down)."""
        mark = self.watermark()
        for engine in self.candidates():
            try:
                conn = engine.connect()
            except (OperationalError, DBAPIError):
                self._down_until[self.replicas.index(engine)] = time.monotonic() + self.retry_s
                continue
            try:
                if self.is_fresh(conn, mark, tables):
                    return conn
            except (OperationalError, DBAPIError):
                self._down_until[self.replicas.index(engine)] = time.monotonic() + self.retry_s
            conn.close()
        return None

    @contextmanager
    def connect(self, tables: Iterable[str] | None = None) -> Iterator[Connection]:
        """A connection for reading `tables` (every data table when None)."""
        tables = list(tables) if tables is not None else None
        conn = self._open_replica(tables) if self.replicas else None
        if conn is None:
            conn = self.primary.connect()
        with self._lock:
            self.served[server_name(conn.engine)] += 1
        with conn:
            yield conn


def _note_commit(conn: Connection) -> None:
    """A transaction that wrote is committing: its connection says so when checked in."""
    if conn.info.pop("wrote", False):
        conn.info["committed_write"] = True


def _note_write_statement(conn, cursor, statement: str, parameters, context, executemany):
    """Mark the connection as having written when a statement may change data."""
    if statement.lstrip()[:10].lower().startswith(WRITES):
        conn.info["wrote"] = True
