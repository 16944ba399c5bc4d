"""`agentform review` on the support example: a preview through the Automation API, reported
per agent, with exit codes CI can gate on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.engine import PulumiProject

EXPECTED = Path(__file__).parent / "expected" / "review-add-handoff.md"


def _review(project: PulumiProject, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "agentform"), "review", *args]
    return subprocess.run(
        [*command, "--cwd", str(project.workdir)],
        env=project.env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_a_new_handoff_shows_the_new_reach(support: PulumiProject) -> None:
    support.up()
    unchanged = _review(support, "--stack", "test")
    assert unchanged.returncode == 0, unchanged.stderr
    assert "No change in what any agent can do." in unchanged.stdout

    support.config(
        "agents",
        json.dumps({"triage": {"handoffs": ["billing"], "instructions": "Route every request."}}),
    )
    report = _review(support, "--stack", "test")
    assert report.returncode == 1, report.stderr
    assert report.stdout == EXPECTED.read_text(), report.stdout

    as_json = _review(support, "--stack", "test", "--format", "json")
    assert as_json.returncode == 1, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["changed"] is True
    [triage] = data["agents"]
    assert triage["name"] == "triage" and triage["handoffs_added"] == ["billing"]
    assert {"target": "refund-payment", "via": ["billing", "refunds"]} in triage["reach_added"]


def test_budgets_scaling_and_deactivation_are_reported(support: PulumiProject) -> None:
    support.config("settings", json.dumps({"triage": {"max_instances": 2}}))
    support.up()
    support.config("budget", "50000")  # an environment policy: every deployment narrows
    support.config("settings", json.dumps({"triage": {"max_instances": 6, "enabled": False}}))
    support.config("agents", json.dumps({"billing": {"handoffs": [], "model": "smart"}}))
    result = _review(support, "--stack", "test", "--format", "json")
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    deployments = {d["resource"]: d["changes"] for d in data["deployments"]}
    assert deployments["triage-live"] == [
        "deactivated",
        "max_instances: 2 → 6",
        "budget narrowed: total tokens per day capped at 50000",
    ]
    assert deployments["fast-live"] == ["budget narrowed: total tokens per day capped at 50000"]
    agents = {a["name"]: a for a in data["agents"]}
    billing = agents["billing"]
    assert billing["model"] == {
        "before": "fast (openai-compatible/small-1)",
        "after": "smart (openai-compatible/large-1)",
    }
    assert billing["handoffs_removed"] == ["refunds"]
    assert [r["target"] for r in billing["reach_removed"]] == ["refund-payment", "refunds"]
    # triage does not hand over to billing here, so its reach is unchanged
    assert "triage" not in agents


def test_errors_exit_with_2(support: PulumiProject) -> None:
    missing = _review(support, "--stack", "no-such-stack")
    assert missing.returncode == 2
    assert missing.stderr == "error: no stack named 'no-such-stack' found\n"
    assert len(missing.stderr.strip().splitlines()) == 1
    nowhere = subprocess.run(
        [
            str(Path(sys.executable).parent / "agentform"),
            "review",
            "--cwd",
            str(support.workdir / "state"),
        ],
        env=support.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert nowhere.returncode == 2 and "no Pulumi project in" in nowhere.stderr
    wrong = _review(support, "--format", "yaml")
    assert wrong.returncode == 2 and "--format" in wrong.stderr
