"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentform.scripted_model import Script, ScriptedModelServer
from tests.support.engine import engine_bin
from tests.support.hosts import RunningHost


@pytest.fixture(scope="session")
def pulumi_bin() -> Path:
    return engine_bin()


@pytest.fixture
def host(tmp_path: Path) -> Iterator[RunningHost]:
    running = RunningHost(tmp_path / "host-state").start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def model_server() -> Iterator[ScriptedModelServer]:
    """A scripted OpenAI/Anthropic-compatible model server on loopback (load steps per test)."""
    server = ScriptedModelServer(Script(steps=[])).start()
    try:
        yield server
    finally:
        server.stop()
