"""Bounded stores: execution (audit) records and worker logs are kept by age and by size.

A pruner runs every `interval_s` on a thread of its own, with its own SQLite connection, so
the event loop never waits on it beyond one small batch (each delete is a short write
transaction of `BATCH` rows, with a pause between batches for the request path's writes).
It deletes only what is outside the retention: records that started before `max_age_s` ago,
then, while the database holds more than its share of `max_bytes`, the oldest records
first. The database file plus its WAL stay under `max_bytes`: SQLite reuses freed pages, and
the WAL is checkpointed and truncated at `wal_limit(max_bytes)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from agentform_runtime.host.state.logs import rotate_logs

log = logging.getLogger("agentform.host")

BATCH = 100
_PAUSE_S = 0.005  # at least, between batches: lets a waiting request-path write take the lock
_WINDOW_S = {"minute": 60, "hour": 3600, "day": 86400, "month": 31 * 86400}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """`30d`, `12h`, `15m`, `90s` or plain seconds; raise ValueError saying what is expected."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration: use a positive number with s, m, h or d")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


def parse_size(text: str) -> int:
    """`512MiB`, `1GB`, `64K` or plain bytes (K/M/G/T: powers of 1024 with `i`, or with no
    `B`; powers of 1000 as KB, MB, GB, TB)."""
    match = _SIZE.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a size: use a positive number with B, KiB, MiB or GiB")
    unit = match.group(2).lower()
    if unit in ("", "b"):
        return int(float(match.group(1)))
    power = "kmgt".index(unit[0]) + 1
    base = 1000 if unit.endswith("b") and "i" not in unit else 1024
    return int(float(match.group(1)) * base**power)


def wal_limit(max_bytes: int) -> int:
    """The share of the bound left to SQLite's write-ahead log."""
    return max(64 * 1024, min(16 * 1024 * 1024, max_bytes // 8))


@dataclass(frozen=True)
class Retention:
    """What the host keeps; `agentform serve` flags of the same names."""

    max_age_s: float = 30 * 86400  # --retention
    max_bytes: int = 512 * 1024 * 1024  # --max-store-size
    log_max_bytes: int = 10 * 1024 * 1024  # --log-max-size
    log_keep: int = 5  # --log-keep
    interval_s: float = 10.0  # --prune-interval

    def __post_init__(self) -> None:
        if self.max_bytes < 1024 * 1024:
            raise ValueError("--max-store-size must be at least 1MiB")
        if self.log_keep < 0:
            raise ValueError("--log-keep must be 0 or more")


@dataclass
class PruneTotals:
    """What pruning has done since the host started, and the sizes it saw last."""

    runs: int = 0
    deleted_by_age: int = 0
    deleted_by_size: int = 0
    token_rows_deleted: int = 0
    logs_rotated: int = 0
    logs_deleted: int = 0
    store_bytes: int = 0
    log_bytes: int = 0
    last_run: float | None = None
    last_error: str | None = None
    oldest_record: float | None = None
    records: int = 0


class Pruner:
    def __init__(self, db_path: Path, log_dir: Path, retention: Retention) -> None:
        self.db_path = db_path
        self.log_dir = log_dir
        self.retention = retention
        self.totals = PruneTotals()
        self._db: sqlite3.Connection | None = None
        self._halt = threading.Event()  # set: the pass in progress stops between batches
        self._wake: asyncio.Event | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute("PRAGMA cache_size=-16384")  # 16 MiB: deletes touch many pages
            wal = wal_limit(self.retention.max_bytes)
            self._db.execute(f"PRAGMA journal_size_limit={wal}")
            self._db.execute(f"PRAGMA wal_autocheckpoint={max(16, min(1000, wal // 4096))}")
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def store_bytes(self) -> int:
        """The database file and its write-ahead log, as on disk."""
        wal = self.db_path.with_name(self.db_path.name + "-wal")
        return sum(p.stat().st_size for p in (self.db_path, wal) if p.exists())

    def _used_bytes(self, db: sqlite3.Connection) -> int:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * page_size)

    def _delete(self, db: sqlite3.Connection, where: str, args: tuple[float, ...]) -> int:
        started = time.perf_counter()
        cursor = db.execute(
            f"DELETE FROM executions WHERE rowid IN (SELECT rowid FROM executions {where} "
            f"ORDER BY started LIMIT {BATCH})",
            args,
        )
        # On the pruner's thread, never the event loop's: leave the write lock free for at
        # least as long as this batch held it, so requests' writes are never starved.
        time.sleep(max(_PAUSE_S, time.perf_counter() - started))
        return cursor.rowcount

    def prune_once(self, now: float | None = None) -> PruneTotals:
        """One pass: records by age, token windows by age, records by size, then logs."""
        now = time.time() if now is None else now
        retention, totals = self.retention, self.totals
        db = self._connection()
        cutoff = now - retention.max_age_s
        while not self._halt.is_set():
            deleted = self._delete(db, "WHERE started < ?", (cutoff,))
            if deleted == 0:
                break
            totals.deleted_by_age += deleted
        for window, length in _WINDOW_S.items():
            totals.token_rows_deleted += db.execute(
                "DELETE FROM token_usage WHERE window=? AND window_start < ?",
                (window, cutoff - length),
            ).rowcount
        # Records may fill what the WAL does not; prune from 90% of that share down to 80%
        # so that the file, which grows only when no freed page is left, stays under it.
        share = retention.max_bytes - wal_limit(retention.max_bytes)
        if self._used_bytes(db) > 0.9 * share:
            while self._used_bytes(db) > 0.8 * share and not self._halt.is_set():
                deleted = self._delete(db, "", ())
                if deleted == 0:
                    break
                totals.deleted_by_size += deleted
        while db.execute("PRAGMA freelist_count").fetchone()[0] > 0 and not self._halt.is_set():
            started = time.perf_counter()
            db.execute(f"PRAGMA incremental_vacuum({BATCH})").fetchall()
            time.sleep(max(_PAUSE_S, time.perf_counter() - started))
        # Deletes touch pages all over the random-keyed indexes, so they can grow the WAL past
        # its share; checkpoint it back into the database and cut it to zero then.
        wal = self.db_path.with_name(self.db_path.name + "-wal")
        if wal.exists() and wal.stat().st_size > wal_limit(retention.max_bytes):
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rotation = rotate_logs(
            self.log_dir, retention.log_max_bytes, retention.log_keep, retention.max_age_s, now
        )
        totals.logs_rotated += rotation.rotated
        totals.logs_deleted += rotation.deleted
        totals.log_bytes = rotation.bytes
        totals.store_bytes = self.store_bytes()
        count, oldest = db.execute("SELECT count(*), min(started) FROM executions").fetchone()
        totals.records, totals.oldest_record = count, oldest
        totals.runs += 1
        totals.last_run = now
        return totals

    async def run(self) -> None:
        """Prune every `interval_s` until `stop()`; a failed pass is logged and retried."""
        self._wake = asyncio.Event()
        while not self._halt.is_set():
            try:
                await asyncio.to_thread(self.prune_once)
                self.totals.last_error = None
            except Exception as exc:
                self.totals.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("pruning the state dir failed: %s", self.totals.last_error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.retention.interval_s)

    def stop(self) -> None:
        """Make `run()` return after the current batch (not the current pass)."""
        self._halt.set()
        if self._wake is not None:
            self._wake.set()
