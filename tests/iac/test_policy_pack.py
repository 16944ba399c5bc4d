"""The policy pack under the real engine: `pulumi preview --policy-pack <agentform policy-pack
path>` on the support example, every rule violated and satisfied."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.support.engine import PulumiProject, Run

RULES = (
    "prod-token-budget",
    "model-allow-list",
    "capacity-caps",
    "handoff-depth",
    "no-secret-values",
    "prod-min-instances",
)
#: Tighter than the defaults so that the small example can break them.
POLICY_CONFIG = {
    "model-allow-list": {"providers": ["openai-compatible"], "models": ["small-*", "large-*"]},
    "handoff-depth": {"max_depth": 1},
}
EVERY_DEPLOYMENT = ("triage", "billing", "refunds", "fast")


def _pack_path() -> str:
    command = [str(Path(sys.executable).parent / "agentform"), "policy-pack", "path"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def _preview(project: PulumiProject, tmp_path: Path, config: dict[str, object]) -> Run:
    path = tmp_path / "policy-config.json"
    path.write_text(json.dumps(config))
    return project.run("preview", "--policy-pack", _pack_path(), "--policy-pack-config", str(path))


def _violations(run: Run) -> dict[str, set[str]]:
    """Policy name -> the levels it was reported at."""
    found: dict[str, set[str]] = {}
    for level, name in re.findall(r"\[(mandatory|advisory)\]\s+([a-z-]+)\s", run.output):
        found.setdefault(name, set()).add(level)
    return found


def _compliant(project: PulumiProject) -> None:
    project.config("environment", "prod")
    project.config("budget", "100000")
    project.config(
        "settings", json.dumps({name: {"min_instances": 1} for name in EVERY_DEPLOYMENT})
    )


def test_the_pack_path_is_a_policy_pack() -> None:
    pack = Path(_pack_path())
    assert (pack / "PulumiPolicy.yaml").is_file() and (pack / "__main__.py").is_file()


def test_every_rule_violated_fails_the_preview(support: PulumiProject, tmp_path: Path) -> None:
    support.config("environment", "prod")  # no budget, min_instances 0
    support.config("models", json.dumps({"smart": {"model": "gpt-huge"}}))
    support.config("agents", json.dumps({"triage": {"handoffs": ["billing"]}}))
    support.config(
        "settings",
        json.dumps(
            {"triage": {"memory_mb": 8192, "config": {"key": "sk-abcdefghijklmnopqrstuvwx"}}}
        ),
    )
    run = _preview(support, tmp_path, POLICY_CONFIG)
    assert run.returncode != 0, run.output[-3000:]
    assert _violations(run) == {
        "prod-token-budget": {"mandatory"},
        "model-allow-list": {"mandatory"},
        "capacity-caps": {"mandatory"},
        "handoff-depth": {"advisory"},
        "no-secret-values": {"mandatory"},
        "prod-min-instances": {"advisory"},
    }, run.output[-5000:]
    output = run.output
    assert "Deployment 'triage-live' (agents/triage on prod) has no max_tokens budget" in output
    assert "ModelApi 'smart': model 'gpt-huge' is not allowed" in output
    assert "memory_mb 8192 is above the cap of 4096" in output
    assert "a handoff chain of depth 2 (triage -> billing -> refunds)" in output
    assert "config.key looks like an OpenAI-style key" in output
    assert "sk-abcdefghijklmnopqrstuvwx" not in output.split("Policies:")[1]
    assert "min_instances 0 is below 1" in output


def test_every_rule_satisfied_passes(support: PulumiProject, tmp_path: Path) -> None:
    _compliant(support)
    run = _preview(support, tmp_path, POLICY_CONFIG)
    assert run.returncode == 0, run.output[-3000:]
    assert _violations(run) == {}


def test_advisory_rules_warn_without_failing(support: PulumiProject, tmp_path: Path) -> None:
    _compliant(support)
    support.config("agents", json.dumps({"triage": {"handoffs": ["billing"]}}))
    support.config("settings", json.dumps({"triage": {"memory_mb": 8192}}))
    # Each rule's level and settings are policy config: capacity made advisory here.
    config = {**POLICY_CONFIG, "capacity-caps": {"enforcementLevel": "advisory"}}
    run = _preview(support, tmp_path, config)
    assert run.returncode == 0, run.output[-3000:]
    assert _violations(run) == {
        "handoff-depth": {"advisory"},
        "prod-min-instances": {"advisory"},
        "capacity-caps": {"advisory"},
    }

    # The environments a rule applies to are config too: `prod` no longer matches.
    elsewhere = {
        **POLICY_CONFIG,
        "prod-min-instances": {"environments": "production*"},
        "capacity-caps": {"max_memory_mb": 8192},
    }
    run = _preview(support, tmp_path, elsewhere)
    assert run.returncode == 0, run.output[-3000:]
    assert _violations(run) == {"handoff-depth": {"advisory"}}
