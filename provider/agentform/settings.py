"""Provider configuration, read in the Pulumi program from the `agentform` config namespace:

- `agentform:endpoint`: the host's URL (default `http://127.0.0.1:4860`, or `$AGENTFORM_ENDPOINT`)
- `agentform:token` (secret): the admin token (default: the local host's `admin-token` file,
  in `$AGENTFORM_STATE_DIR` or `~/.agentform`)
- `agentform:platform`: `local` (default) or `aws`; on `aws`, `agentform:region`,
  `agentform:awsEndpointUrl` and `agentform:awsReadiness` (see `agentform.platforms`)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when used: the CLI reads these settings without loading Pulumi
    import pulumi

DEFAULT_PORT = 4860
DEFAULT_ENDPOINT = f"http://127.0.0.1:{DEFAULT_PORT}"
DEFAULT_STATE_DIR = Path.home() / ".agentform"
PLATFORMS = ("local", "aws")


def state_dir() -> Path:
    return Path(os.environ.get("AGENTFORM_STATE_DIR", DEFAULT_STATE_DIR))


def token_from_file() -> str:
    try:
        return (state_dir() / "admin-token").read_text().strip()
    except OSError:
        return ""


def resolve_endpoint(configured: str | None) -> str:
    """`agentform:endpoint`, else $AGENTFORM_ENDPOINT, else the default local host."""
    return (configured or os.environ.get("AGENTFORM_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def resolve_token(configured: str | None) -> str:
    """`agentform:token`, else the local host's admin-token file."""
    return configured or token_from_file()


def connection_inputs() -> dict[str, pulumi.Input[str]]:
    """The hidden inputs that tell each resource's provider where the platform is."""
    import pulumi

    config = pulumi.Config("agentform")
    platform = config.get("platform") or "local"
    if platform not in PLATFORMS:
        raise ValueError(f"agentform:platform is '{platform}'; supported: {', '.join(PLATFORMS)}")
    token = config.get_secret("token") or pulumi.Output.secret(resolve_token(None))
    return {
        "agentform_endpoint": resolve_endpoint(config.get("endpoint")),
        "agentform_token": token,
    }
