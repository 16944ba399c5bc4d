"""Read queries only the console asks: filtered executions and a deployment's figures.

They read the host's database on their own short-lived connection, in a worker thread, so a
large table never holds up the event loop that serves requests (SQLite's WAL lets readers
run beside the writer).
"""

from __future__ import annotations

import math
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from agentform_runtime.host.state.store import ExecutionRow
from agentform_runtime.specs import DeploymentKey

# The console's windows: label -> seconds, in the order offered.
WINDOWS: dict[str, int] = {"15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800}
BUCKETS = 30
PAGE_SIZE = 50
STATUSES = ("ok", "error", "refused", "failed", "running")


class ExecutionFilter(BaseModel):
    """What the executions page filters on; empty means any."""

    environment: str = ""
    workload: str = ""  # kind/name, e.g. agents/triage
    status: str = ""
    identity: str = ""
    before: int | None = None  # a row cursor: only rows older than this one


@dataclass
class Bucket:
    start: float
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass
class Figures:
    """A deployment's requests over one window, in equal buckets, and their totals."""

    window: str
    start: float
    end: float
    buckets: list[Bucket]
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    p50: float | None
    p90: float | None
    p99: float | None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


def percentile(sorted_values: list[float], share: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


def is_error(status: str) -> bool:
    """Errors, failures and refusals count against the error rate; running ones do not."""
    return status not in ("ok", "running")


class ConsoleQueries:
    def __init__(self, database: Path) -> None:
        self.database = database

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    # --- executions ---------------------------------------------------------------------------

    async def executions(self, query: ExecutionFilter) -> list[tuple[int, ExecutionRow]]:
        """The newest matching records first, PAGE_SIZE at most, each with its row cursor."""
        return await run_in_threadpool(self._executions, query)

    def _executions(self, query: ExecutionFilter) -> list[tuple[int, ExecutionRow]]:
        clauses: list[str] = []
        values: list[object] = []
        if query.environment:
            clauses.append("environment = ?")
            values.append(query.environment)
        if query.workload:
            kind, _, name = query.workload.partition("/")
            clauses.append("kind = ? AND name = ?")
            values += [kind, name]
        if query.status:
            clauses.append("status = ?")
            values.append(query.status)
        if query.identity:
            clauses.append("identity = ?")
            values.append(query.identity)
        if query.before is not None:
            clauses.append("rowid < ?")
            values.append(query.before)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        # Rows are inserted as requests start, so rowid order is start order, and cheap.
        sql = f"SELECT rowid AS cursor, * FROM executions {where} ORDER BY rowid DESC LIMIT ?"
        with self._connect() as conn:
            rows = conn.execute(sql, [*values, PAGE_SIZE]).fetchall()
        return [(row["cursor"], _execution(row)) for row in rows]

    async def identities(self, limit: int = 200) -> list[str]:
        """End users seen recently, for the filter's suggestions."""
        return await run_in_threadpool(self._identities, limit)

    def _identities(self, limit: int) -> list[str]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT DISTINCT identity FROM (SELECT identity FROM executions "
                "WHERE identity IS NOT NULL ORDER BY rowid DESC LIMIT 5000) LIMIT ?",
                (limit,),
            ).fetchall()
        return sorted(row["identity"] for row in rows)

    # --- figures ------------------------------------------------------------------------------

    async def figures(self, key: DeploymentKey, window: str, now: float | None = None) -> Figures:
        return await run_in_threadpool(self._figures, key, window, now)

    def _figures(self, key: DeploymentKey, window: str, now: float | None) -> Figures:
        span = WINDOWS[window]
        end = time.time() if now is None else now
        start = end - span
        width = span / BUCKETS
        buckets = [Bucket(start=start + i * width) for i in range(BUCKETS)]
        everything: list[float] = []
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT started, duration_ms, status, input_tokens, output_tokens "
                "FROM executions WHERE environment=? AND kind=? AND name=? AND started >= ? "
                "AND started <= ?",
                (*key, start, end),
            ).fetchall()
        for row in rows:
            bucket = buckets[min(BUCKETS - 1, int((row["started"] - start) / width))]
            if row["status"] == "running":
                continue
            bucket.requests += 1
            bucket.errors += is_error(row["status"])
            bucket.input_tokens += row["input_tokens"]
            bucket.output_tokens += row["output_tokens"]
            if row["duration_ms"] is not None:
                bucket.latencies.append(row["duration_ms"])
                everything.append(row["duration_ms"])
        for bucket in buckets:
            bucket.latencies.sort()
        everything.sort()
        return Figures(
            window=window,
            start=start,
            end=end,
            buckets=buckets,
            requests=sum(b.requests for b in buckets),
            errors=sum(b.errors for b in buckets),
            input_tokens=sum(b.input_tokens for b in buckets),
            output_tokens=sum(b.output_tokens for b in buckets),
            p50=percentile(everything, 0.5),
            p90=percentile(everything, 0.9),
            p99=percentile(everything, 0.99),
        )


def _execution(row: sqlite3.Row) -> ExecutionRow:
    data = dict(row)
    data.pop("cursor", None)
    return ExecutionRow(**data)


def tail(path: Path, max_bytes: int = 64 * 1024, max_lines: int = 200) -> list[str]:
    """The last lines of a text file (none if it does not exist), read from its end."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]  # the first line read is likely cut
    return lines[-max_lines:]
