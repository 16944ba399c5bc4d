"""Bounded stores: execution records by age and by size, worker logs by size and by age."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from agentform_runtime.host.state.logs import rotate_logs
from agentform_runtime.host.state.retention import (
    Pruner,
    Retention,
    parse_duration,
    parse_size,
    wal_limit,
)
from agentform_runtime.host.state.store import ExecutionRow, Store
from agentform_runtime.specs import DeploymentKey

NOW = 1_900_000_000.0
DAY = 86400.0
KEY = DeploymentKey("development", "functions", "lookup")


def _record(store: Store, started: float, path: str = "/") -> str:
    request_id = uuid.uuid4().hex
    store.start_execution(
        ExecutionRow(
            request_id=request_id,
            trace_id=uuid.uuid4().hex,
            parent_id=None,
            environment="development",
            kind="functions",
            name="lookup",
            path=path,
            identity="user-1",
            started=started,
            version="v1",
        )
    )
    store.finish_execution(request_id, status="ok", http_status=200, duration_ms=1.5)
    return request_id


def _kept(store: Store) -> list[str]:
    rows = store._records.execute("SELECT request_id FROM executions ORDER BY started")
    return [row["request_id"] for row in rows.fetchall()]


def test_durations_and_sizes_parse_with_their_units() -> None:
    assert parse_duration("30d") == 30 * DAY
    assert parse_duration("12h") == 12 * 3600
    assert parse_duration("1.5m") == 90
    assert parse_duration("45") == 45
    assert parse_size("512MiB") == 512 * 1024**2
    assert parse_size("1GB") == 10**9
    assert parse_size("64K") == 64 * 1024
    assert parse_size("2048") == 2048
    for bad in ("", "-1d", "0s", "soon", "3w"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)
    for bad in ("", "lots", "1PB", "0MiB"):
        with pytest.raises(ValueError, match="not a size"):
            parse_size(bad)
    with pytest.raises(ValueError, match="--max-store-size must be at least 1MiB"):
        Retention(max_bytes=1000)


def test_records_older_than_the_retention_go_and_younger_ones_all_stay(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    ages = [45, 31, 30.01, 29.99, 10, 1, 0.001]  # days
    ids = {age: _record(store, NOW - age * DAY) for age in ages}
    store.add_token_usage([(KEY, "minute", int(NOW - 40 * DAY))], 5, 5)  # a window long over
    store.add_token_usage([(KEY, "month", int(NOW - 20 * DAY))], 5, 5)  # the current month
    pruner = Pruner(store.path, tmp_path / "logs", Retention(max_age_s=30 * DAY))
    totals = pruner.prune_once(NOW)
    assert set(_kept(store)) == {ids[a] for a in ages if a < 30}
    assert totals.deleted_by_age == 3 and totals.deleted_by_size == 0
    assert totals.token_rows_deleted == 1
    assert store.token_usage(KEY, "month", int(NOW - 20 * DAY)) == (5, 5)
    assert totals.records == 4
    pruner.close()
    store.close()


def test_the_store_stays_under_its_size_and_keeps_the_newest_records(tmp_path: Path) -> None:
    bound = 1024 * 1024
    store = Store(tmp_path / "state.db", wal_limit(bound))
    pruner = Pruner(store.path, tmp_path / "logs", Retention(max_bytes=bound))
    sent: list[str] = []
    sizes = []
    for batch in range(30):  # about 3 MB of records, pruned as the host does, between batches
        for n in range(60):
            sent.append(_record(store, NOW + batch * 100 + n, path="/" + "x" * 1200))
        sizes.append(pruner.prune_once(NOW + batch * 100 + 100).store_bytes)
    kept = _kept(store)
    assert 0 < len(kept) < len(sent) // 2
    assert kept == sent[-len(kept) :]  # the newest, every one of them, in order
    assert max(sizes) <= bound, sizes
    assert pruner.store_bytes() <= bound
    assert pruner.totals.deleted_by_size == len(sent) - len(kept)
    pruner.close()
    store.close()


def _write(fd: int, first: int, count: int) -> None:
    for n in range(first, first + count):
        os.write(fd, f"line {n:08d} {'.' * 80}\n".encode())


def _lines(log: Path) -> list[str]:
    """The lines of a log and its rotated files, oldest first. A cut falls on a block
    boundary, so a line may start in one file and end in the next: join, then split."""
    files = sorted(log.parent.glob(log.name + ".*"), key=lambda p: -int(p.suffix[1:]))
    return b"".join(path.read_bytes() for path in [*files, log]).decode().splitlines()


def test_worker_logs_rotate_without_losing_a_line_written_through_an_open_handle(
    tmp_path: Path,
) -> None:
    log = tmp_path / "logs" / "development" / "functions" / "lookup.log"
    log.parent.mkdir(parents=True)
    # A worker's stdout: opened once with O_APPEND, never reopened.
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        written = 0
        for _ in range(3):
            _write(fd, written, 3000)  # about 270 kB each time
            written += 3000
            result = rotate_logs(log.parent.parent.parent, 200_000, 5, 30 * DAY, time.time())
            assert result.rotated == 1
            assert log.stat().st_size < 200_000
        _write(fd, written, 10)  # the same handle still writes into the live log
        written += 10
    finally:
        os.close(fd)
    assert _lines(log) == [f"line {n:08d} {'.' * 80}" for n in range(written)]
    assert sorted(p.name for p in log.parent.iterdir()) == [
        "lookup.log",
        "lookup.log.1",
        "lookup.log.2",
        "lookup.log.3",
    ]


def test_rotated_logs_beyond_the_count_or_the_age_are_deleted(tmp_path: Path) -> None:
    log = tmp_path / "development" / "agents" / "triage.log"
    log.parent.mkdir(parents=True)
    for round_ in range(4):
        log.write_text(f"round {round_}\n" * 5000)
        rotate_logs(tmp_path, 10_000, 2, 30 * DAY, time.time())
    names = sorted(p.name for p in log.parent.iterdir())
    assert names == ["triage.log", "triage.log.1", "triage.log.2"]
    assert "round 3" in (log.parent / "triage.log.1").read_text()
    assert "round 2" in (log.parent / "triage.log.2").read_text()
    old = time.time() - 31 * DAY
    os.utime(log.parent / "triage.log.2", (old, old))
    os.utime(log, (old, old))  # a live log nothing wrote to for longer than the retention
    result = rotate_logs(tmp_path, 10_000_000, 2, 30 * DAY, time.time())
    # The old live content was moved out and deleted; round 3's rotated log, younger, stays.
    assert result.deleted == 1
    assert sorted(p.name for p in log.parent.iterdir()) == ["triage.log", "triage.log.2"]
    assert "round 3" in (log.parent / "triage.log.2").read_text()
    assert log.stat().st_size == 0


def test_bad_serve_flags_are_named_before_anything_starts(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agentform.cli import app

    for flags, message in (
        (("--retention", "soon"), "--retention: 'soon' is not a duration"),
        (("--max-store-size", "lots"), "--max-store-size: 'lots' is not a size"),
        (("--max-store-size", "10KiB"), "--max-store-size must be at least 1MiB"),
        (("--otlp-endpoint", "collector:4318"), "an OTLP/HTTP endpoint is an http"),
    ):
        result = CliRunner().invoke(app, ["serve", "--state-dir", str(tmp_path), *flags])
        assert result.exit_code == 1
        assert message in " ".join(result.output.split()), result.output
    assert not (tmp_path / "host.url").exists()
