"""An Environment never takes over one that another stack or project manages.

The README runs the quickstart and then the promotion example on one host: both have a stack
`dev`, and an Environment without `name=` is named after its stack. Creating one whose name
the host already has with other settings fails, naming the resource and the way out; one with
exactly the same settings is adopted (a create retried after a failure or lost state)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentform.resources._provider import ProviderError
from agentform.resources.environment import EnvironmentProvider
from tests.support.engine import PulumiProject, change_summary
from tests.support.hosts import RunningHost

PROGRAM = Path(__file__).parent / "programs" / "stage_environment"
ENVIRONMENT = "pulumi-python:dynamic/agentform:Environment"
TAKEN = (
    "Environment 'environment': environment 'dev' already exists on the host with other "
    "settings (another stack or project manages it); give this Environment another name= "
    "(or use another stack name), or delete that environment first"
)


def _dev_stack(
    tmp_path: Path, pulumi_bin: Path, host: RunningHost, project: str, description: str
) -> PulumiProject:
    """Project `project`'s stack `dev` (its own file backend) on the test's host."""
    stack = PulumiProject(
        tmp_path / project,
        PROGRAM,
        pulumi_bin,
        env={"AGENTFORM_STATE_DIR": str(host.state_dir)},
        stack="dev",
        project=project,
    )
    stack.config("agentform:endpoint", host.url)
    stack.config("description", description)
    return stack


def _environments(project: PulumiProject) -> list[dict[str, Any]]:
    return [r for r in project.resources() if r["type"] == ENVIRONMENT]


def test_a_second_project_cannot_take_over_a_dev_environment(
    tmp_path: Path, pulumi_bin: Path, host: RunningHost
) -> None:
    admin = host.admin()
    quickstart = _dev_stack(tmp_path, pulumi_bin, host, "quickstart", "Where the quickstart runs")
    promotion = _dev_stack(tmp_path, pulumi_bin, host, "promotion", "The dev stage")
    assert change_summary(quickstart.up())["create"] == 2

    failed = promotion.up(check=False)
    assert failed.returncode != 0
    assert TAKEN in failed.errors(), failed.output[-3000:]
    assert admin.get("/v1/environments/dev").json()["description"] == "Where the quickstart runs"
    assert _environments(promotion) == []  # nothing recorded: destroying it touches nothing

    # The quickstart's stack still owns it: a retry changes nothing, destroy removes it ...
    assert change_summary(quickstart.up())["same"] == 2
    assert promotion.up(check=False).returncode != 0  # ... and a retry fails the same way
    quickstart.destroy()
    assert admin.get("/v1/environments/dev").status_code == 404
    # Once it is gone, the other project creates its own.
    assert change_summary(promotion.up())["create"] == 1
    assert admin.get("/v1/environments/dev").json()["description"] == "The dev stage"
    promotion.destroy()
    assert admin.get("/v1/environments/dev").status_code == 404


def test_a_create_that_finds_the_same_environment_adopts_it(
    tmp_path: Path, pulumi_bin: Path, host: RunningHost
) -> None:
    admin = host.admin()
    first = _dev_stack(tmp_path, pulumi_bin, host, "first", "same settings")
    first.up()
    # The state is lost (a new backend, or `pulumi stack rm --force`): the same program with
    # the same settings creates the environment again, which adopts the one on the host.
    again = _dev_stack(tmp_path, pulumi_bin, host, "again", "same settings")
    assert change_summary(again.up())["create"] == 2
    assert admin.get("/v1/environments/dev").json() == {
        "name": "dev",
        "description": "same settings",
        "policies": [],
    }
    [environment] = _environments(again)
    assert environment["outputs"]["run_url"] == f"{host.url}/run/dev"
    again.destroy()
    assert admin.get("/v1/environments/dev").status_code == 404


def test_a_forced_replacement_keeps_the_environment(
    tmp_path: Path, pulumi_bin: Path, host: RunningHost
) -> None:
    """`pulumi up --replace` replaces create-before-delete unless told otherwise: the new
    environment has the old one's name, so the old one's delete would remove it."""
    admin = host.admin()
    stack = _dev_stack(tmp_path, pulumi_bin, host, "replaced", "first")
    stack.up()
    [environment] = _environments(stack)

    forced = stack.run("up", "--yes", "--skip-preview", "--json", "--replace", environment["urn"])
    assert forced.returncode == 0, forced.errors() + forced.output[-3000:]
    assert change_summary(forced)["replace"] == 1
    assert admin.get("/v1/environments/dev").json()["description"] == "first"

    stack.config("description", "second")  # a forced replacement that also changes settings
    forced = stack.run("up", "--yes", "--skip-preview", "--json", "--replace", environment["urn"])
    assert forced.returncode == 0, forced.errors() + forced.output[-3000:]
    assert admin.get("/v1/environments/dev").json()["description"] == "second"
    stack.destroy()
    assert admin.get("/v1/environments/dev").status_code == 404


class _Platform:
    """The part of the Platform interface `claim` uses."""

    def __init__(self, current: dict[str, Any] | None) -> None:
        self.current = current

    def get_environment(self, name: str) -> dict[str, Any] | None:
        return self.current


def _claim(platform: str, current: dict[str, Any] | None, **inputs: Any) -> None:
    provider = EnvironmentProvider("environment")
    provider._configured = {"agentform:platform": platform, "agentform:region": "eu-west-1"}
    provider.claim(_Platform(current), {"name": "dev", **inputs})  # type: ignore[arg-type]


@pytest.mark.parametrize("platform", ["local", "aws"])
def test_claim_compares_description_and_policies_on_every_platform(platform: str) -> None:
    where = "on AWS" if platform == "aws" else "on the host"
    _claim(platform, None, description="x", policies=["europe"])  # nothing there
    # The same settings (the local host's view names it; AWS's record does not): adopted.
    _claim(
        platform,
        {"name": "dev", "description": "x", "policies": ["europe"]},
        description="x",
        policies=["europe"],
    )
    _claim(platform, {"description": "", "policies": []})  # defaults on both sides
    for current in (
        {"description": "y", "policies": ["europe"]},
        {"description": "x", "policies": []},
        {"description": "x", "policies": ["europe", "budget"]},
    ):
        with pytest.raises(ProviderError, match=f"environment 'dev' already exists {where}"):
            _claim(platform, current, description="x", policies=["europe"])
