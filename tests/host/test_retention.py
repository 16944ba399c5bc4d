"""Bounded stores on a running host: after more requests than its size allows, the oldest
records are gone, the newest are all there, and the store is under its bound."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.support.hosts import RunningHost
from tests.support.polling import wait_until
from tests.support.workloads import deploy, function_artifact, setup_environment

ECHO = """
def main() -> dict:
    return {"ok": True}
"""

BOUND = 1024 * 1024


def _kept(state_dir: Path) -> list[str]:
    with sqlite3.connect(f"file:{state_dir / 'state.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT request_id FROM executions ORDER BY started").fetchall()
    return [row[0] for row in rows]


def _store_bytes(state_dir: Path) -> int:
    files = (state_dir / "state.db", state_dir / "state.db-wal")
    return sum(p.stat().st_size for p in files if p.exists())


def test_the_oldest_records_go_and_the_store_stays_under_its_bound(tmp_path: Path) -> None:
    state = tmp_path / "state"
    host = RunningHost(
        state, ("--max-store-size", "1MiB", "--prune-interval", "0.2s", "--retention", "30d")
    ).start()
    try:
        admin = host.admin()
        key = setup_environment(admin)
        deploy(admin, function_artifact(tmp_path, "echo", ECHO), "echo").raise_for_status()
        client = host.client(key)
        # Each record keeps its request's path: 2 kB paths make 1 MiB a few hundred records.
        url = "/run/development/functions/echo/" + "p" * 2000
        sent = []
        for _ in range(900):
            response = client.post(url, json={})
            assert response.status_code == 200, response.text
            sent.append(response.headers["x-agentform-request-id"])
        after = admin.get("/v1/retention").json()["runs"]
        retention = wait_until(
            lambda: (r := admin.get("/v1/retention").json())["runs"] >= after + 2 and r
        )
        kept = _kept(state)
        oldest = admin.get(f"/v1/executions/{sent[0]}")
        newest = admin.get(f"/v1/executions/{sent[-1]}")
    finally:
        host.stop()
    assert retention["deleted_by_size"] > 0 and retention["last_error"] is None
    assert retention["max_store_bytes"] == BOUND
    assert 0 < len(kept) < len(sent) // 2
    assert kept == sent[-len(kept) :]  # the newest records, every one of them
    assert oldest.status_code == 404 and newest.status_code == 200
    assert _store_bytes(state) <= BOUND
