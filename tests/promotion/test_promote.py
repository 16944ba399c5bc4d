"""`agentform promote` with the real engine, a real host and the example project."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.promotion.conftest import TwoStacks, ask_tool
from tests.support.engine import change_summary
from tests.support.hosts import RunningHost

# Several real `pulumi up`s per test, on a shared 2-core machine: more than the default.
pytestmark = [pytest.mark.engine, pytest.mark.timeout(900)]


def _answer(host: RunningHost, environment: str) -> Any:
    response = ask_tool(host, environment)
    assert response.status_code == 200, response.text
    return response.json()


def _policies(host: RunningHost, environment: str) -> list[str]:
    view = host.admin().get(f"/v1/environments/{environment}/deployments/agents/orders-specialist")
    assert view.status_code == 200, view.text
    return list(view.json()["settings"]["policies"])


def test_promote_release_history_and_rollback(stacks: TwoStacks, host: RunningHost) -> None:
    stacks.up("dev")
    dev_state = stacks.project.run("stack", "export", "--stack", "dev", check=True).json()
    assert "order-status v1" in json.dumps(_answer(host, "dev"))
    stacks.set_tool_answer("v2")  # dev's working tree moves on; dev still runs v1

    promoted = stacks.promote("dev", "prod")
    assert promoted.returncode == 0, promoted.output
    # The plan names the deployments; prod's environment-level max_tokens differs from dev's.
    assert "functions/order-status" in promoted.stdout
    assert "warning: environment-level policies differ" in promoted.stderr
    assert "types: max_tokens" in promoted.stderr
    assert "'prod' runs rel-" in promoted.stdout
    assert "Updating (prod)" in promoted.stderr  # the engine's progress, shown as it runs
    # Prod serves dev's deployed answer, not the working tree's.
    assert "order-status v1" in json.dumps(_answer(host, "prod"))
    # The pin is in Pulumi.prod.yaml, readable line by line.
    pin_text = stacks.stack_file("prod").read_text()
    assert "agentform:release" in pin_text and '"origin": "dev"' in pin_text
    # Without --with-policies prod keeps its own deployment-level policies (none).
    assert _policies(host, "prod") == []
    assert _policies(host, "dev") == ["dev-specialist-location"]

    # FROM untouched: same state, and (code put back) a preview with nothing to do.
    after = stacks.project.run("stack", "export", "--stack", "dev", check=True).json()
    assert after["deployment"]["resources"] == dev_state["deployment"]["resources"]
    stacks.set_tool_answer("v1")
    summary = change_summary(stacks.preview("dev"))
    assert set(summary) == {"same"}, summary

    # The bundle of prod is dev's bundle: same deployments, same digest.
    dev_bundle = json.loads(
        stacks.agentform("release", "show", "dev", "--cwd", str(stacks.workdir)).stdout
    )
    prod_bundle = json.loads(
        stacks.agentform("release", "show", "prod", "--cwd", str(stacks.workdir)).stdout
    )
    assert dev_bundle["digest"].startswith("rel-")
    assert [d["artifact"] for d in prod_bundle["deployments"]] == [
        d["artifact"] for d in dev_bundle["deployments"]
    ]

    # Prod stays pinned: another `pulumi up` of prod changes nothing and still runs v1.
    stacks.set_tool_answer("v3")
    assert set(change_summary(stacks.preview("prod"))) == {"same"}

    with_policies = stacks.promote("dev", "prod", "--with-policies")
    assert with_policies.returncode == 0, with_policies.output
    assert _policies(host, "prod") == ["dev-specialist-location"]

    listed = stacks.agentform("release", "list", "prod", "--cwd", str(stacks.workdir))
    rows = [line.split("\t") for line in listed.stdout.strip().splitlines()[1:]]
    assert len(rows) == 2, listed.output
    assert [r[1] for r in rows] == ["dev", "dev"] and [r[4] for r in rows] == ["true", "false"]

    rolled = stacks.agentform(
        "promote", "--rollback", "prod", "--yes", "--cwd", str(stacks.workdir)
    )
    assert rolled.returncode == 0, rolled.output
    assert _policies(host, "prod") == []  # the previous release: without dev's policies
    assert "order-status v1" in json.dumps(_answer(host, "prod"))
    listed = stacks.agentform("release", "list", "prod", "--cwd", str(stacks.workdir))
    assert len(listed.stdout.strip().splitlines()) == 1 + 3

    # Unpinned, prod builds from its code again (the working tree says v3).
    unpinned = stacks.agentform("release", "unpin", "prod", "--cwd", str(stacks.workdir))
    assert unpinned.returncode == 0, unpinned.output
    assert "agentform:release" not in stacks.stack_file("prod").read_text()
    stacks.up("prod")
    assert "order-status v3" in json.dumps(_answer(host, "prod"))
