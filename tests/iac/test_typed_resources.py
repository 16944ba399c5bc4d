"""Typed resources, detailed diffs and drift, under the real engine against a real host."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from agentform.packaging import build_artifact
from agentform_runtime.specs import Manifest, WorkloadKind
from tests.support.engine import REPO, PulumiProject, change_summary
from tests.support.hosts import RunningHost

#: The last commit before resources had their own types (all `pulumi-python:dynamic:Resource`).
UNTYPED_COMMIT = "e54dc7d"
TYPES = {
    "Environment",
    "IntegrationConnection",
    "ModelApi",
    "Function",
    "Agent",
    "Deployment",
    "Policy",
}


def _steps(preview: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A `preview --json` result's steps by resource name (stack excluded)."""
    return {
        s["urn"].rsplit("::", 1)[1]: s
        for s in preview["steps"]
        if not s["urn"].endswith("pulumi:pulumi:Stack::" + s["urn"].rsplit("::", 1)[1])
    }


def _types(project: PulumiProject) -> set[str]:
    return {r["type"] for r in project.resources() if r["type"].startswith("pulumi-python:dyn")}


def _old_code(tmp_path: Path) -> Path:
    """The provider and runtime as they were at UNTYPED_COMMIT, unpacked under tmp_path."""
    archive = subprocess.run(
        [
            "git",
            "-C",
            str(REPO),
            "archive",
            UNTYPED_COMMIT,
            "provider/agentform",
            "runtime/agentform_runtime",
        ],
        capture_output=True,
        check=True,
    ).stdout
    target = tmp_path / "untyped"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def test_a_stack_of_untyped_resources_updates_in_place(
    support: PulumiProject, tmp_path: Path
) -> None:
    old = _old_code(tmp_path)
    new_env = support.env
    support.env = {**new_env, "PYTHONPATH": f"{old / 'provider'}:{old / 'runtime'}"}
    support.config("budget", "50000")
    assert change_summary(support.up())["create"] > 10
    types = _types(support)
    assert types == {"pulumi-python:dynamic:Resource"}  # the old code's one type

    support.env = new_env
    preview = support.preview().json()
    ops = {name: s["op"] for name, s in _steps(preview).items()}
    assert set(ops.values()) <= {"same", "update"}, ops  # no replace, create or delete
    summary = change_summary(support.up())
    assert summary["create"] == summary["delete"] == summary["replace"] == 0, summary
    types = _types(support)
    assert types == {f"pulumi-python:dynamic/agentform:{t}" for t in TYPES}
    assert set(change_summary(support.preview())) == {"same"}


def _kinds(step: dict[str, Any]) -> dict[str, str]:
    return {k: v["kind"] for k, v in (step.get("detailedDiff") or {}).items()}


def test_preview_names_each_changed_property_with_its_kind(support: PulumiProject) -> None:
    support.up()
    support.config(
        "agents",
        json.dumps(
            {
                "triage": {"handoffs": ["billing"], "instructions": "Route every request."},
                "billing": {"model": "smart", "tools": []},
                "refunds": {"tools": ["refund-payment", "lookup-order"]},
            }
        ),
    )
    support.config(
        "settings", json.dumps({"triage": {"memory_mb": 1024, "config": {"tier": "gold"}}})
    )
    support.config("models", json.dumps({"smart": {"model": "large-2"}}))
    steps = _steps(support.preview().json())

    triage = steps["triage"]
    assert triage["op"] == "update"
    assert _kinds(triage) == {"agents": "add", "instructions": "update", "artifact": "update"}
    assert set(triage["diffReasons"]) == {"agents", "instructions", "artifact"}
    assert _kinds(steps["billing"]) == {
        "model": "update",
        "functions": "delete",
        "artifact": "update",
    }
    assert _kinds(steps["refunds"]) == {"functions": "update", "artifact": "update"}
    assert _kinds(steps["smart"]) == {"model": "update", "artifact": "update"}
    deployment = steps["triage-live"]
    assert "::pulumi-python:dynamic/agentform:Deployment::" in deployment["urn"]
    assert _kinds(deployment)["memory_mb"] == "add"
    assert _kinds(deployment)["config"] == "add"
    assert steps["refunds-live"]["op"] == "update"  # its agent's artifact is unknown until up

    # An input in replace_on shows as a replace: the agent's name on the platform.
    support.config("agents", json.dumps({"triage": {"name": "front-desk"}}))
    steps = _steps(support.preview().json())
    assert steps["triage"]["op"] == "replace"
    assert _kinds(steps["triage"])["name"] == "update-replace"
    assert steps["triage-live"]["op"] == "replace"  # its workload is deleted first


def test_refresh_finds_drift_in_every_setting(support: PulumiProject, host: RunningHost) -> None:
    support.config(
        "settings",
        json.dumps({"triage": {"memory_mb": 1024, "max_instances": 3, "config": {"tier": "gold"}}}),
    )
    support.up()
    admin = host.admin()
    path = "/v1/environments/development/deployments/agents/triage"
    settings = admin.get(path).json()["settings"]
    # Another version of the same agent, uploaded out of band.
    manifest = Manifest(
        kind=WorkloadKind.AGENTS,
        name="triage",
        models=["fast"],
        spec={"instructions": "Changed by hand."},
    )
    uploaded = admin.post(
        "/v1/artifacts",
        content=build_artifact(manifest),
        headers={"content-type": "application/zip"},
    )
    assert uploaded.status_code in (200, 201), uploaded.text
    drifted = {
        **settings,
        "memory_mb": 2048,
        "timeout_s": 90,
        "scaling": {"min_instances": 1, "max_instances": 5, "idle_timeout_s": 30.0},
        "config": {"tier": "silver"},
        "enabled": False,
        "artifact": uploaded.json()["digest"],
    }
    put = admin.put(path, json=drifted)
    assert put.status_code == 200, put.text

    refresh = support.refresh()
    events = [e["resOutputsEvent"]["metadata"] for e in refresh.events() if "resOutputsEvent" in e]
    triage = next(m for m in events if m["urn"].endswith("::triage-live"))
    expected = {
        "memory_mb",
        "timeout_s",
        "min_instances",
        "max_instances",
        "idle_timeout_s",
        "config",
        "enabled",
        "artifact",
    }
    assert triage["op"] == "update" and expected <= set(triage.get("diffs") or []), triage
    others = [m for m in events if m["op"] != "same" and not m["urn"].endswith("::triage-live")]
    assert others == []  # platform defaults are no drift

    # The next update puts the program's settings back.
    assert change_summary(support.up())["update"] >= 1
    restored = admin.get(path).json()["settings"]
    assert restored["memory_mb"] == 1024 and restored["enabled"] is True
    assert restored["scaling"]["max_instances"] == 3 and restored["config"] == {"tier": "gold"}
    assert set(change_summary(support.preview())) == {"same"}


def test_refresh_errors_name_the_resource(support: PulumiProject, host: RunningHost) -> None:
    support.up()
    host.stop()  # refresh reads every resource from a host that is gone
    result = support.run("refresh", "--yes", "--skip-preview")
    assert result.returncode != 0
    assert "Deployment 'triage-live'" in result.output, result.output[-3000:]
    assert "Deployment 'triage'" not in result.output
