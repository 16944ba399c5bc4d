"""`agentform review --help` and `agentform policy-pack path` load nothing heavy."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.host.test_cli import HEAVY_MODULES

NO_WORK = """
import io, json, sys
from contextlib import redirect_stdout
from typer.testing import CliRunner
from agentform.cli import app

runner = CliRunner()
results = [
    runner.invoke(app, args)
    for args in (["review", "--help"], ["policy-pack", "--help"], ["policy-pack", "path"])
]
loaded = [name for name in sys.argv[1:] if name in sys.modules]
print(json.dumps({"exits": [r.exit_code for r in results], "path": results[2].output,
                  "loaded": loaded}))
"""


def test_review_help_and_the_pack_path_load_nothing_heavy() -> None:
    ran = subprocess.run(
        [sys.executable, "-c", NO_WORK, *HEAVY_MODULES, "pulumi_policy", "agentform.review"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(ran.stdout)
    assert result["exits"] == [0, 0, 0]
    assert result["path"].strip().endswith("agentform/policypack")
    assert result["loaded"] == []
