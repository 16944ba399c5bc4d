"""Agentform's CrossGuard policy pack, shipped with the package.

Run it with `pulumi preview --policy-pack "$(agentform policy-pack path)"`. The rules are in
`rules.py` (plain functions over resource inputs); `__main__.py` wires them into a
`pulumi_policy.PolicyPack`, which the engine runs through `pulumi-analyzer-policy-python`
with the `python3` on PATH (or `$PULUMI_PYTHON_CMD`).
"""

from __future__ import annotations

from pathlib import Path

#: The directory to give `pulumi preview --policy-pack`.
PACK_DIR = Path(__file__).resolve().parent
