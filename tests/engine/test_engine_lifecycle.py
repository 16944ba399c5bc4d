"""The real Pulumi engine drives an Agentform resource through its whole lifecycle.

This proves the provider is pickled by reference from the installed `agentform` package, and
that `diff` (no change -> no update) and `update` (outputs kept) are right."""

from __future__ import annotations

import subprocess

from tests.support.engine import change_summary, engine_bin
from tests.support.hosts import RunningHost


def test_engine_reports_the_pinned_version(pulumi_bin) -> None:  # type: ignore[no-untyped-def]
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    sdk_pin = next(d for d in pyproject["project"]["dependencies"] if d.startswith("pulumi=="))
    version = subprocess.run(
        [str(pulumi_bin / "pulumi"), "version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert version == "v" + sdk_pin.split("==")[1]
    assert engine_bin() == pulumi_bin  # a second set-up finds the same cached engine


def test_environment_lifecycle(project_for, host: RunningHost) -> None:  # type: ignore[no-untyped-def]
    project = project_for("environment")
    admin = host.admin()

    preview = project.preview()
    assert change_summary(preview)["create"] == 2  # the stack and the environment
    assert admin.get("/v1/environments/development").status_code == 404  # preview changes nothing

    assert change_summary(project.up())["create"] == 2
    assert admin.get("/v1/environments/development").json()["description"] == "first"
    outputs = project.outputs()
    assert outputs["run_url"] == f"{host.url}/run/development"

    again = change_summary(project.up())
    assert again["update"] == 0 and again["create"] == 0 and again["same"] == 2

    project.config("description", "second")
    changed = change_summary(project.up())
    assert changed["update"] == 1 and changed["create"] == 0 and changed["delete"] == 0
    assert admin.get("/v1/environments/development").json()["description"] == "second"
    outputs = project.outputs()
    assert outputs["description"] == "second"
    assert outputs["run_url"] == f"{host.url}/run/development"  # update returned every output

    # An out-of-band change is seen by refresh.
    admin.put(
        "/v1/environments/development", json={"description": "changed by hand"}
    ).raise_for_status()
    project.refresh()
    [environment] = [
        r
        for r in project.resources()
        if r["type"] == "pulumi-python:dynamic/agentform:Environment" and "development" in r["urn"]
    ]
    assert environment["outputs"]["description"] == "changed by hand"

    project.destroy()
    assert admin.get("/v1/environments/development").status_code == 404


def test_refresh_and_destroy_follow_a_host_that_moved(project_for, host: RunningHost) -> None:  # type: ignore[no-untyped-def]
    project = project_for("environment")
    project.up()
    old_url = host.url
    host.stop()
    host.start()  # the same state, on a new port
    assert host.url != old_url
    project.config("agentform:endpoint", host.url)
    # Refresh and destroy use the provider configuration recorded by the last up (Pulumi's
    # rule); an up with nothing to change records the new endpoint.
    moved = change_summary(project.up())
    assert moved["update"] == 0 and moved["create"] == 0
    project.refresh()
    project.destroy()
    assert host.admin().get("/v1/environments/development").status_code == 404
