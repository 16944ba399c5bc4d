"""The host's durable state: one SQLite database in WAL mode.

Every write commits before the caller acknowledges anything, so a `kill -9` of the host
loses nothing it has answered. Control-plane writes use `synchronous=FULL`; execution
records use a second connection with `synchronous=NORMAL` (durable across a process crash,
which is what WAL guarantees, and cheap on the request path).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field

from agentform_runtime.specs import DeploymentKey, DeploymentSpec

KEPT_VERSIONS = 10

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    type TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (type, name));
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, environment TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL, revoked REAL);
CREATE TABLE IF NOT EXISTS artifacts (
    digest TEXT PRIMARY KEY, size INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS deployments (
    environment TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
    spec TEXT NOT NULL, version TEXT NOT NULL, status TEXT NOT NULL, message TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (environment, kind, name));
CREATE TABLE IF NOT EXISTS versions (
    environment TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
    version TEXT NOT NULL, spec TEXT NOT NULL, deployed REAL NOT NULL,
    PRIMARY KEY (environment, kind, name, version));
CREATE TABLE IF NOT EXISTS executions (
    request_id TEXT PRIMARY KEY, trace_id TEXT NOT NULL, parent_id TEXT,
    environment TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, version TEXT,
    path TEXT NOT NULL DEFAULT '/', identity TEXT, started REAL NOT NULL, duration_ms REAL,
    status TEXT NOT NULL,
    http_status INTEGER, error_class TEXT, error TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS executions_trace ON executions (trace_id);
CREATE INDEX IF NOT EXISTS executions_started ON executions (started);
CREATE TABLE IF NOT EXISTS token_usage (
    environment TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
    window TEXT NOT NULL, window_start INTEGER NOT NULL,
    input INTEGER NOT NULL, output INTEGER NOT NULL,
    PRIMARY KEY (environment, kind, name, window, window_start));
"""


ObjectType = Literal["environment", "policy", "connection"]
Body = TypeVar("Body", bound=BaseModel)


class StoredConnection(BaseModel):
    """A connection as stored: its secret values sealed by the secret box."""

    provider: str
    config: dict[str, str] = Field(default_factory=dict)
    secret_keys: list[str] = Field(default_factory=list)
    sealed: str = ""


class DeploymentRow(BaseModel):
    environment: str
    kind: str
    name: str
    spec: DeploymentSpec
    version: str
    status: str
    message: str
    created: float
    updated: float

    @property
    def key(self) -> DeploymentKey:
        return DeploymentKey(self.environment, self.kind, self.name)


class VersionRow(BaseModel):
    version: str
    spec: DeploymentSpec
    deployed: float


class ExecutionRow(BaseModel):
    """One audit record: an execution, or a refusal, in its trace."""

    request_id: str
    trace_id: str
    parent_id: str | None
    environment: str
    kind: str
    name: str
    version: str | None = None
    path: str = "/"
    identity: str | None
    started: float
    duration_ms: float | None = None
    status: str = "running"
    http_status: int | None = None
    error_class: str | None = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0


def _connect(path: Path, synchronous: str, wal_bytes: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    # Lets the pruner give freed pages back to the file system. It takes effect only on a
    # new database (one created earlier keeps its size until a VACUUM).
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")
    # The WAL is part of the store's size bound: checkpoint before it outgrows its share,
    # and cut it back to that share after a checkpoint.
    conn.execute(f"PRAGMA journal_size_limit={wal_bytes}")
    conn.execute(f"PRAGMA wal_autocheckpoint={max(16, min(1000, wal_bytes // 4096))}")
    return conn


class Store:
    """Typed access to the host's tables. Not thread-safe: use it from the event loop."""

    def __init__(self, path: Path, wal_bytes: int = 16 * 1024 * 1024) -> None:
        self.path = path
        self._db = _connect(path, "FULL", wal_bytes)
        self._db.executescript(_SCHEMA)
        self._records = _connect(path, "NORMAL", wal_bytes)
        self._api_keys: dict[str, tuple[str, str]] = {}

    def close(self) -> None:
        self._db.close()
        self._records.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- named objects: environments, policies, connections ----------------------------

    def put_object(self, type_: ObjectType, name: str, body: BaseModel) -> bool:
        """Create or replace; return True when it was created."""
        now = time.time()
        with self.transaction() as db:
            created = (
                db.execute(
                    "SELECT 1 FROM objects WHERE type=? AND name=?", (type_, name)
                ).fetchone()
                is None
            )
            db.execute(
                "INSERT INTO objects (type, name, body, created, updated) VALUES (?,?,?,?,?) "
                "ON CONFLICT (type, name) DO UPDATE "
                "SET body=excluded.body, updated=excluded.updated",
                (type_, name, body.model_dump_json(), now, now),
            )
        return created

    def get_object(self, type_: ObjectType, name: str, model: type[Body]) -> Body | None:
        row = self._db.execute(
            "SELECT body FROM objects WHERE type=? AND name=?", (type_, name)
        ).fetchone()
        return None if row is None else model.model_validate_json(row["body"])

    def list_objects(self, type_: ObjectType, model: type[Body]) -> dict[str, Body]:
        rows = self._db.execute(
            "SELECT name, body FROM objects WHERE type=? ORDER BY name", (type_,)
        ).fetchall()
        return {row["name"]: model.model_validate_json(row["body"]) for row in rows}

    def delete_object(self, type_: ObjectType, name: str) -> bool:
        with self.transaction() as db:
            cursor = db.execute("DELETE FROM objects WHERE type=? AND name=?", (type_, name))
        return cursor.rowcount > 0

    # --- API keys -------------------------------------------------------------------------

    def add_api_key(self, key_id: str, environment: str, key_hash: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO api_keys (id, environment, key_hash, created) VALUES (?,?,?,?)",
                (key_id, environment, key_hash, time.time()),
            )

    def find_api_key(self, key_hash: str) -> tuple[str, str] | None:
        """Return (id, environment) of an unrevoked key with this hash. Every run request
        asks, so valid keys are remembered (this process is the only writer; revoking
        forgets them)."""
        found = self._api_keys.get(key_hash)
        if found is not None:
            return found
        row = self._db.execute(
            "SELECT id, environment FROM api_keys WHERE key_hash=? AND revoked IS NULL",
            (key_hash,),
        ).fetchone()
        if row is None:
            return None
        found = self._api_keys[key_hash] = (row["id"], row["environment"])
        return found

    def list_api_keys(self, environment: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT id, created, revoked FROM api_keys WHERE environment=? ORDER BY created",
            (environment,),
        ).fetchall()
        return [dict(row) for row in rows]

    def revoke_api_key(self, environment: str, key_id: str) -> bool:
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE api_keys SET revoked=? WHERE id=? AND environment=? AND revoked IS NULL",
                (time.time(), key_id, environment),
            )
        self._api_keys.clear()
        return cursor.rowcount > 0

    # --- artifacts ------------------------------------------------------------------------

    def add_artifact(self, digest: str, size: int) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO artifacts (digest, size, created) VALUES (?,?,?)",
                (digest, size, time.time()),
            )

    def has_artifact(self, digest: str) -> bool:
        row = self._db.execute("SELECT 1 FROM artifacts WHERE digest=?", (digest,)).fetchone()
        return row is not None

    def artifacts_in_use(self) -> set[str]:
        """Digests of the artifacts that a deployment or a kept version points at."""
        rows = self._db.execute(
            "SELECT json_extract(spec, '$.artifact') FROM deployments UNION "
            "SELECT json_extract(spec, '$.artifact') FROM versions"
        ).fetchall()
        return {row[0] for row in rows if row[0]}

    # --- deployments and versions ---------------------------------------------------------

    def get_deployment(self, key: DeploymentKey) -> DeploymentRow | None:
        row = self._db.execute(
            "SELECT * FROM deployments WHERE environment=? AND kind=? AND name=?", key
        ).fetchone()
        return None if row is None else _deployment(row)

    def list_deployments(self, environment: str | None = None) -> list[DeploymentRow]:
        if environment is None:
            rows = self._db.execute("SELECT * FROM deployments ORDER BY environment, kind, name")
        else:
            rows = self._db.execute(
                "SELECT * FROM deployments WHERE environment=? ORDER BY kind, name",
                (environment,),
            )
        return [_deployment(row) for row in rows.fetchall()]

    def save_deployment(
        self,
        key: DeploymentKey,
        spec: DeploymentSpec,
        version: str,
        status: str,
        message: str = "",
    ) -> None:
        """Record the deployment's settings and live version, and keep that version."""
        environment, kind, name = key
        body = spec.model_dump_json()
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO deployments (environment, kind, name, spec, version, status, "
                "message, created, updated) VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (environment, kind, name) DO UPDATE SET spec=excluded.spec, "
                "version=excluded.version, status=excluded.status, message=excluded.message, "
                "updated=excluded.updated",
                (environment, kind, name, body, version, status, message, now, now),
            )
            db.execute(
                "INSERT INTO versions (environment, kind, name, version, spec, deployed) "
                "VALUES (?,?,?,?,?,?) ON CONFLICT DO UPDATE SET deployed=excluded.deployed, "
                "spec=excluded.spec",
                (environment, kind, name, version, body, now),
            )
            db.execute(
                "DELETE FROM versions WHERE environment=? AND kind=? AND name=? AND version "
                "NOT IN (SELECT version FROM versions WHERE environment=? AND kind=? AND name=? "
                "ORDER BY deployed DESC LIMIT ?)",
                (environment, kind, name, environment, kind, name, KEPT_VERSIONS),
            )

    def set_deployment_status(self, key: DeploymentKey, status: str, message: str = "") -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE deployments SET status=?, message=?, updated=? "
                "WHERE environment=? AND kind=? AND name=?",
                (status, message, time.time(), *key),
            )

    def versions(self, key: DeploymentKey) -> list[VersionRow]:
        """Kept versions, newest first."""
        rows = self._db.execute(
            "SELECT version, spec, deployed FROM versions WHERE environment=? AND kind=? "
            "AND name=? ORDER BY deployed DESC",
            key,
        ).fetchall()
        return [
            VersionRow(
                version=r["version"],
                spec=DeploymentSpec.model_validate_json(r["spec"]),
                deployed=r["deployed"],
            )
            for r in rows
        ]

    def delete_deployment(self, key: DeploymentKey) -> bool:
        with self.transaction() as db:
            cursor = db.execute(
                "DELETE FROM deployments WHERE environment=? AND kind=? AND name=?", key
            )
            db.execute("DELETE FROM versions WHERE environment=? AND kind=? AND name=?", key)
        return cursor.rowcount > 0

    # --- token usage -------------------------------------------------------------------------

    def token_usage(self, key: DeploymentKey, window: str, start: int) -> tuple[int, int]:
        row = self._records.execute(
            "SELECT input, output FROM token_usage WHERE environment=? AND kind=? AND name=? "
            "AND window=? AND window_start=?",
            (*key, window, start),
        ).fetchone()
        return (0, 0) if row is None else (row["input"], row["output"])

    def add_token_usage(
        self,
        windows: Iterable[tuple[DeploymentKey, str, int]],
        input_tokens: int,
        output_tokens: int,
    ) -> None:
        """Count tokens in each (deployment, window, window start), in one commit."""
        self._records.execute("BEGIN")
        try:
            self._records.executemany(
                "INSERT INTO token_usage VALUES (?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET "
                "input=input+excluded.input, output=output+excluded.output",
                [
                    (*key, window, start, input_tokens, output_tokens)
                    for key, window, start in windows
                ],
            )
        except BaseException:
            self._records.execute("ROLLBACK")
            raise
        self._records.execute("COMMIT")

    # --- execution records (audit) ----------------------------------------------------------

    def start_execution(self, record: ExecutionRow) -> None:
        self._records.execute(
            "INSERT INTO executions VALUES (:request_id, :trace_id, :parent_id, :environment, "
            ":kind, :name, :version, :path, :identity, :started, :duration_ms, :status, "
            ":http_status, :error_class, :error, :input_tokens, :output_tokens)",
            record.model_dump(),
        )

    def finish_execution(
        self,
        request_id: str,
        *,
        status: str,
        http_status: int,
        duration_ms: float,
        version: str | None = None,
        error_class: str | None = None,
        error: str | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
    ) -> None:
        self._records.execute(
            "UPDATE executions SET status=?, http_status=?, duration_ms=?, "
            "version=COALESCE(?, version), error_class=?, error=?, input_tokens=?, "
            "output_tokens=? WHERE request_id=?",
            (
                status,
                http_status,
                duration_ms,
                version,
                error_class,
                error,
                input_tokens,
                output_tokens,
                request_id,
            ),
        )

    def fail_unfinished_executions(self, reason: str) -> int:
        """Mark records left 'running' by a previous host process as failed."""
        cursor = self._records.execute(
            "UPDATE executions SET status='failed', error_class='HostRestarted', error=? "
            "WHERE status='running'",
            (reason,),
        )
        return cursor.rowcount

    def trace(self, trace_id: str) -> list[ExecutionRow]:
        rows = self._records.execute(
            "SELECT * FROM executions WHERE trace_id=? ORDER BY started", (trace_id,)
        ).fetchall()
        return [ExecutionRow(**dict(row)) for row in rows]

    def execution(self, request_id: str) -> ExecutionRow | None:
        row = self._records.execute(
            "SELECT * FROM executions WHERE request_id=?", (request_id,)
        ).fetchone()
        return None if row is None else ExecutionRow(**dict(row))


def _deployment(row: sqlite3.Row) -> DeploymentRow:
    data = dict(row)
    data["spec"] = DeploymentSpec.model_validate_json(data["spec"])
    return DeploymentRow(**data)
