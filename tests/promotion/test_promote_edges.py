"""Bad input changes nothing; two hosts; requests to prod during a promotion never fail."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from agentform.release import Pin, bundle_digest
from tests.promotion.conftest import TwoStacks, ask_tool
from tests.support.hosts import RunningHost

# Several real `pulumi up`s per test, on a shared 2-core machine: more than the default.
pytestmark = [pytest.mark.engine, pytest.mark.timeout(900)]


def _fails(stacks: TwoStacks, *args: str, expect: str, yes: bool = True) -> None:
    before = {s: stacks.stack_file(s).read_text() for s in ("dev", "prod")}
    confirm = ["--yes"] if yes else []
    result = stacks.agentform("promote", *args, *confirm, "--cwd", str(stacks.workdir))
    assert result.returncode != 0, result.output
    assert expect in result.stderr, result.output
    assert "Traceback" not in result.output
    assert [ln for ln in result.stderr.splitlines() if ln.startswith("error:")] != []
    assert {s: stacks.stack_file(s).read_text() for s in ("dev", "prod")} == before


def test_bad_input_is_one_line_and_changes_nothing(stacks: TwoStacks, host: RunningHost) -> None:
    _fails(stacks, "dev", "nope", expect="error: no stack 'nope' in project 'agentform-promotion'")
    _fails(stacks, "dev", "prod", expect="error: stack 'dev' has no deployments to promote")
    _fails(stacks, "dev", "dev", expect="error: cannot promote stack 'dev' onto itself")
    _fails(
        stacks,
        "dev",
        "organization/other-project/prod",
        expect="is in project 'other-project', not in 'agentform-promotion'",
    )
    stacks.up("dev")
    # Without --yes and without a terminal to ask on, the preview runs and nothing changes.
    _fails(stacks, "dev", "prod", yes=False, expect="error: 'prod' was not updated")
    assert stacks.project.run("stack", "export", "--stack", "prod", check=True).json()[
        "deployment"
    ].get("resources") in (None, [])
    assert stacks.promote("dev", "prod").returncode == 0

    # A hand-edited pin (an artifact swapped, digest left as it was) is refused by prod's own
    # preview and by a rollback, with the reason; a declined promotion puts it back as it was.
    pinned = stacks.pulumi("prod", "config", "get", "agentform:release").stdout
    pin = json.loads(pinned)
    pin["deployments"][0]["artifact"] = "sha256:" + "0" * 64
    stacks.pulumi("prod", "config", "set", "agentform:release", json.dumps(pin, indent=2))
    preview = stacks.preview("prod", check=False)
    assert preview.returncode != 0
    assert "the pin was edited by hand; promote again" in preview.output
    _fails(stacks, "--rollback", "prod", expect="the pin was edited by hand")
    _fails(stacks, "dev", "prod", yes=False, expect="error: 'prod' was not updated")
    # Promoting again, as the message says, replaces it.
    again = stacks.promote("dev", "prod")
    assert again.returncode == 0, again.output
    replacing = [ln for ln in again.stderr.splitlines() if "replacing the unusable pin" in ln]
    assert replacing == [
        f"replacing the unusable pin: Pulumi.prod.yaml: agentform:release says {pin['digest']} "
        f"but its deployments digest to {bundle_digest(Pin.model_validate(pin).deployments)}: "
        "the pin was edited by hand"
    ], again.stderr
    restored = Pin.model_validate_json(
        stacks.pulumi("prod", "config", "get", "agentform:release").stdout
    )
    assert restored.verified().deployments == Pin.model_validate_json(pinned).deployments

    # A workload prod's program declares but the release lacks fails prod's preview, named.
    valid = Pin.model_validate_json(pinned)
    kept = [d for d in valid.deployments if d.key != "functions/order-status"]
    lacking = valid.model_copy(update={"deployments": kept, "digest": bundle_digest(kept)})
    stacks.pulumi("prod", "config", "set", "agentform:release", lacking.to_config())
    preview = stacks.preview("prod", check=False)
    assert preview.returncode != 0
    assert "functions/order-status is not in the pinned release" in preview.output
    assert "agentform release unpin" in preview.output


def test_promote_to_another_host_copies_artifacts(
    stacks: TwoStacks, host: RunningHost, tmp_path: Path
) -> None:
    other = RunningHost(tmp_path / "other-host").start()
    try:
        stacks.config("prod", "agentform:endpoint", other.url)
        stacks.config("prod", "agentform:token", other.token, secret=True)
        stacks.up("dev")
        stacks.set_tool_answer("v2")
        result = stacks.promote("dev", "prod")
        assert result.returncode == 0, result.output
        assert result.stderr.count("(digest verified)") == 4  # one artifact per workload
        assert "order-status v1" in json.dumps(ask_tool(other, "prod").json())
        assert other.admin().get("/v1/environments/prod").status_code == 200
        assert host.admin().get("/v1/environments/prod").status_code == 404
    finally:
        other.stop()


def test_requests_to_prod_during_promote_never_fail(stacks: TwoStacks, host: RunningHost) -> None:
    stacks.up("prod")  # prod built from code (v1)
    stacks.set_tool_answer("v2")
    stacks.up("dev")  # dev runs v2
    key = host.admin().post("/v1/environments/prod/api-keys").json()["key"]
    done = threading.Event()
    answers: list[str] = []
    failures: list[str] = []

    def hammer() -> None:
        with httpx.Client(base_url=host.url, headers={"authorization": f"Bearer {key}"}) as run:
            while not done.is_set():
                response = run.post("/run/prod/functions/order-status", json={"order_id": "A-1001"})
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")
                else:
                    answers.append(response.text)

    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        promote = subprocess.run(
            [
                sys.executable,
                "-m",
                "agentform",
                "promote",
                "dev",
                "prod",
                "--yes",
                "--cwd",
                str(stacks.workdir),
            ],
            env=stacks.project.env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    finally:
        done.set()
        worker.join()
    assert promote.returncode == 0, promote.stdout + promote.stderr
    assert failures == []
    assert answers, "no request reached prod during the promotion"
    assert "order-status v2" in json.dumps(ask_tool(host, "prod").json())
