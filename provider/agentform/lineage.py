"""The lineage of one request: its audit records arranged as a tree of hops."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from rich.tree import Tree

_STATUS_STYLE = {
    "ok": "green",
    "error": "red",
    "refused": "yellow",
    "failed": "red",
    "running": "cyan",
}


def _label(record: dict[str, Any]) -> Text:
    status = record["status"]
    label = Text()
    label.append(f"{record['kind']}/{record['name']}", style="bold")
    if record.get("path", "/") != "/":
        label.append(f" {record['path']}")
    label.append(f"  {record.get('version') or '-'}", style="dim")
    label.append(f"  {status}", style=_STATUS_STYLE.get(status, ""))
    if record.get("http_status"):
        label.append(f" {record['http_status']}")
    duration = record.get("duration_ms")
    label.append(f"  {duration:.1f} ms" if duration is not None else "  -")
    tokens = (record.get("input_tokens") or 0, record.get("output_tokens") or 0)
    if any(tokens):
        label.append(f"  tokens {tokens[0]} in / {tokens[1]} out")
    label.append(f"  user {record.get('identity') or '-'}", style="dim")
    if record.get("error_class"):
        label.append(f"  {record['error_class']}", style="red")
    return label


def lineage_tree(trace_id: str, records: list[dict[str, Any]]) -> Tree:
    """Records whose parent is another record of the trace hang under it; the rest are roots."""
    by_id = {r["request_id"]: r for r in records}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for record in sorted(records, key=lambda r: r["started"]):
        parent = record.get("parent_id")
        children.setdefault(parent if parent in by_id else None, []).append(record)
    tree = Tree(Text(f"trace {trace_id}", style="bold"))

    def grow(node: Tree, parent: str | None) -> None:
        for record in children.get(parent, []):
            grow(node.add(_label(record)), record["request_id"])

    grow(tree, None)
    return tree
