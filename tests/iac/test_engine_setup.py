"""scripts/setup-engine.sh adds the policy-pack launcher to a cached engine that lacks it,
without rebuilding the engine (a stand-in cache and a stand-in `go` that refuses to build)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VERSION = next(
    line.split()[1]
    for line in (REPO / "engine" / "go.mod").read_text().splitlines()
    if line.strip().startswith("github.com/pulumi/pulumi/pkg/v3 ")
)
STAND_IN_GO = """#!/bin/sh
if [ "$1 $2 $3" = "mod download -json" ]; then
  printf '{\\n\\t"Path": "%s",\\n\\t"Dir": "%s",\\n\\t"Sum": "h1:x"\\n}\\n' "$4" "$STAND_IN_SDK"
  exit 0
fi
echo "stand-in go: refusing '$*' (nothing may be built)" >&2
exit 3
"""


def test_a_cached_engine_gets_the_analyzer_without_a_rebuild(tmp_path: Path) -> None:
    cache = tmp_path / "cache" / f"pulumi-{VERSION}" / "bin"
    cache.mkdir(parents=True)
    (cache / "pulumi").write_text(f"#!/bin/sh\necho {VERSION}\n")
    for name in (
        "pulumi-language-python",
        "pulumi-language-python-exec",
        "pulumi-resource-pulumi-python",
    ):
        (cache / name).write_text("#!/bin/sh\n")
    for path in cache.iterdir():
        path.chmod(0o755)
    sdk = tmp_path / "sdk"
    (sdk / "python" / "dist").mkdir(parents=True)
    launcher = "#!/bin/sh\necho stand-in analyzer\n"
    (sdk / "python" / "dist" / "pulumi-analyzer-policy-python").write_text(launcher)
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "go").write_text(STAND_IN_GO)
    (tools / "go").chmod(0o755)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "AGENTFORM_"))},
        "PATH": f"{tools}:/usr/bin:/bin",  # no pulumi on it: the cache is used
        "AGENTFORM_CACHE": str(tmp_path / "cache"),
        "STAND_IN_SDK": str(sdk),
    }

    def setup() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(REPO / "scripts" / "setup-engine.sh")],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    first = setup()
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == str(cache)
    analyzer = cache / "pulumi-analyzer-policy-python"
    assert analyzer.read_text() == launcher and os.access(analyzer, os.X_OK)
    assert f"added pulumi-analyzer-policy-python {VERSION}" in first.stderr
    assert "building" not in first.stderr

    again = setup()
    assert again.returncode == 0 and "added" not in again.stderr
