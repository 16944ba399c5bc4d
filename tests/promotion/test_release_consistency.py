"""What promoting leaves behind: one digest on both stacks, a pin written by an older version
still usable, the same versions once unpinned; and the user's selected stack untouched."""

from __future__ import annotations

import hashlib
import json

import pytest

from agentform.release import RELEASE_KEY, Pin
from tests.promotion.conftest import TwoStacks
from tests.support.engine import Run, change_summary

# Several real `pulumi up`s per test, on a shared 2-core machine: more than the default.
pytestmark = [pytest.mark.engine, pytest.mark.timeout(900)]


def _selected(stacks: TwoStacks) -> Run:
    return stacks.project.run("stack", "--show-name")


def _in_project(stacks: TwoStacks, *args: str) -> Run:
    return stacks.agentform(*args, "--cwd", str(stacks.workdir))


def _digest(stacks: TwoStacks, stack: str) -> str:
    shown = _in_project(stacks, "release", "show", stack)
    assert shown.returncode == 0, shown.output
    return str(json.loads(shown.stdout)["digest"])


def _versions(stacks: TwoStacks, stack: str) -> dict[str, str]:
    state = stacks.project.run("stack", "export", "--stack", stack, check=True).json()
    return {
        r["urn"].rsplit("::", 1)[-1]: r["outputs"]["version"]
        for r in state["deployment"]["resources"]
        if r["type"].endswith("Deployment")
    }


def test_one_digest_on_both_stacks_and_the_same_versions_once_unpinned(
    stacks: TwoStacks,
) -> None:
    stacks.up("dev")
    promoted = stacks.promote("dev", "prod", "--with-policies")
    assert promoted.returncode == 0, promoted.output

    # prod runs dev's release: `release show` gives one digest on both, the one the promotion
    # and `release list` name, although prod's versions are its own (its model API's
    # connection is `prod-model-key`, dev's `dev-model-key`).
    digest = _digest(stacks, "dev")
    assert _digest(stacks, "prod") == digest
    assert f"'prod' runs {digest} from 'dev'" in promoted.stdout
    listed = _in_project(stacks, "release", "list", "prod")
    assert listed.returncode == 0, listed.output
    assert listed.stdout.splitlines()[1].split("\t")[0] == digest
    assert _versions(stacks, "prod") != _versions(stacks, "dev")

    # A pin written before the versions left the digest is still accepted, as it was.
    pin = Pin.model_validate_json(stacks.pulumi("prod", "config", "get", RELEASE_KEY).stdout)
    entries = [d.model_dump(mode="json") for d in pin.deployments]  # versions included
    canonical = json.dumps(entries, sort_keys=True, separators=(",", ":"))
    old_digest = "rel-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]
    assert old_digest != digest
    stacks.pulumi(
        "prod",
        "config",
        "set",
        RELEASE_KEY,
        pin.model_copy(update={"digest": old_digest}).to_config(),
    )
    assert set(change_summary(stacks.preview("prod"))) == {"same"}

    # Unpinned, prod builds the same code from its working tree. The pin wrote out memory_mb
    # and timeout_s (the defaults) where the program leaves them unset: that is no change.
    # What does change is what prod keeps of its own: the specialist's deployment-level
    # policies (promoted --with-policies, prod declares none).
    unpinned = _in_project(stacks, "release", "unpin", "prod")
    assert unpinned.returncode == 0, unpinned.output
    preview = stacks.pulumi("prod", "preview", "--json", "--diff")
    updates = {
        step["urn"].rsplit("::", 1)[1]: sorted(step.get("diffReasons", []))
        for step in preview.json()["steps"]
        if step["op"] == "update"
    }
    assert updates == {"orders-specialist-deployment": ["policies", "policy_specs"]}, updates
    running = _versions(stacks, "prod")
    stacks.up("prod")
    assert _versions(stacks, "prod") == running
    assert set(change_summary(stacks.preview("prod"))) == {"same"}


def test_the_selected_stack_stays_selected(stacks: TwoStacks) -> None:
    stacks.project.run("stack", "select", "dev", check=True)
    for command in (("release", "list", "prod"), ("review", "--stack", "prod")):
        ran = _in_project(stacks, *command)
        assert ran.returncode in (0, 1), ran.output  # review: 1 when the preview has changes
        assert _selected(stacks).stdout.strip() == "dev", command

    stacks.up("dev")
    promoted = stacks.promote("dev", "prod")
    assert promoted.returncode == 0, promoted.output
    assert _selected(stacks).stdout.strip() == "dev"

    # With no stack selected, none is selected afterwards either.
    stacks.project.run("stack", "unselect", check=True)
    assert _in_project(stacks, "release", "list", "prod").returncode == 0
    nothing = _selected(stacks)
    assert nothing.returncode != 0 and "no stack selected" in nothing.stderr
