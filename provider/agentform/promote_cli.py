"""`agentform promote` and `agentform release show|list|unpin`.

The Automation API (and with it Pulumi's SDK) is imported inside the commands: `--help` stays
instant."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.markup import escape

from agentform.cli import app, console, errors, fail

if TYPE_CHECKING:
    from agentform.promotion import Plan, PromotionError

release_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Show, list and unpin the releases a stack runs.",
)
app.add_typer(release_app, name="release")

CwdOption = Annotated[
    Path,
    typer.Option(
        "--cwd",
        file_okay=False,
        help="The Pulumi project's directory (where Pulumi.yaml is).",
    ),
]


def _failed(exc: PromotionError) -> NoReturn:
    fail(exc.message, exc.hint)


def _say(message: str) -> None:
    errors.print(message, markup=False, highlight=False, soft_wrap=True)


def _show_plan(plan: Plan, origin: str, destination: str) -> None:
    from agentform.promotion import describe

    counts = ", ".join(f"{n} {op}" for op, n in sorted(plan.counts.items())) or "no steps"
    # Whole lines even on a narrow terminal: a plan is read, copied and grepped.
    lines = [f"plan for '{destination}' ({counts}):"]
    lines += [f"  {describe(change)}" for change in plan.changes]
    if not plan.changes:
        lines.append("  no deployment changes version")
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if plan.policy_types_differ:
        errors.print(
            "[yellow]warning:[/yellow] environment-level policies differ between "
            f"'{escape(origin)}' and '{escape(destination)}' "
            f"(types: {escape(', '.join(plan.policy_types_differ))}): "
            "the promoted versions may behave differently there",
            highlight=False,
            soft_wrap=True,
        )


def _confirmed(destination: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        return False
    return typer.confirm(f"Update stack '{destination}'?", default=False)


@app.command(short_help="Release one stack's exact versions to another stack.")
def promote(
    stacks: Annotated[
        list[str],
        typer.Argument(
            help="FROM TO (two stacks of the project); with --rollback, only TO.",
            show_default=False,
        ),
    ],
    with_policies: Annotated[
        bool,
        typer.Option(
            "--with-policies", help="Also overwrite TO's deployment-level policies with FROM's."
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Update without asking (for CI).")] = False,
    rollback: Annotated[
        bool,
        typer.Option("--rollback", help="Re-apply TO's previous release instead."),
    ] = False,
    cwd: CwdOption = Path("."),
) -> None:
    """Pin FROM's release (artifacts, configuration, and with --with-policies its
    deployment-level policies) in TO's config (Pulumi.TO.yaml), preview TO, show the plan and
    update TO blue-green. FROM is only read. TO then deploys exactly the pinned artifacts, never
    its working tree, until `agentform release unpin TO`."""
    if rollback and len(stacks) != 1:
        fail("--rollback takes one stack: TO", "e.g. `agentform promote --rollback prod`")
    if not rollback and len(stacks) != 2:
        fail("promote takes two stacks: FROM TO", "e.g. `agentform promote dev prod`")
    from pulumi.automation.errors import CommandError

    from agentform.promotion import Promotion, PromotionError, engine_error

    origin = None if rollback else stacks[0]
    destination = stacks[-1]
    promotion = Promotion(
        work_dir=str(cwd.resolve()),
        destination=destination,
        origin=origin,
        with_policies=with_policies,
        say=_say,
    )
    try:
        _say(f"reading releases in {cwd.resolve()} ...")
        pin = promotion.prepare(rollback=rollback)
        verb = "rolling back to" if rollback else "promoting"
        _say(
            f"{verb} {pin.digest} from '{pin.origin}' ({len(pin.deployments)} deployments"
            f"{', with policies' if pin.with_policies else ''}); "
            f"pinned in Pulumi.{promotion.to_name}.yaml; previewing ..."
        )
        plan = promotion.preview()
        _show_plan(plan, pin.origin, promotion.to_name)
        with promotion.timings.track("user"):
            confirmed = _confirmed(promotion.to_name, yes)
        if not confirmed:
            promotion.restore()
            fail(
                f"'{promotion.to_name}' was not updated; Pulumi.{promotion.to_name}.yaml is "
                "unchanged",
                "pass --yes to update without asking",
            )
        counts = promotion.up(on_output=lambda line: _say(line.rstrip("\n")))
    except PromotionError as exc:
        _failed(exc)
    except CommandError as exc:
        fail(engine_error(exc), "is `pulumi` on PATH and the backend reachable?")
    timings = promotion.timings.summary()
    done = ", ".join(f"{n} {op}" for op, n in sorted(counts.items()))
    console.print(
        f"'{promotion.to_name}' runs {pin.digest} from '{pin.origin}' ({done}); "
        f"{timings['total_s']:.1f} s: engine {timings['engine_s']:.1f} s, other pulumi calls "
        f"{timings['pulumi_cli_s']:.1f} s, agentform {timings['agentform_s']:.1f} s",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _workspace(cwd: Path):  # type: ignore[no-untyped-def]
    from agentform.promotion import Timings, Workspace

    return Workspace(str(cwd.resolve()), Timings())


@release_app.command("show")
def release_show(
    stack: Annotated[str, typer.Argument(help="The stack.")], cwd: CwdOption = Path(".")
) -> None:
    """Print the release bundle a stack runs (from its state), as JSON."""
    from agentform.promotion import PromotionError
    from agentform.release import ReleaseError, bundle_from_state

    try:
        workspace = _workspace(cwd)
        bundle = bundle_from_state(workspace.state(workspace.known(stack)))
    except PromotionError as exc:
        _failed(exc)
    except ReleaseError as exc:
        fail(f"stack '{stack}': {exc}")
    if not bundle.deployments:
        fail(f"stack '{stack}' has no deployments", f"run `pulumi up --stack {stack}` first")
    print(json.dumps(bundle.model_dump(mode="json"), indent=2))


@release_app.command("list")
def release_list(
    stack: Annotated[str, typer.Argument(help="The stack.")], cwd: CwdOption = Path(".")
) -> None:
    """The stack's last releases, newest first: bundle digest, origin stack, time, who."""
    from agentform.promotion import PromotionError, history

    try:
        workspace = _workspace(cwd)
        releases = history(workspace.select(workspace.known(stack)))
    except PromotionError as exc:
        _failed(exc)
    if not releases:
        console.print(f"stack '{stack}' has run no promoted release", markup=False)
        return
    print("\t".join(("release", "origin", "promoted_at", "promoted_by", "with_policies")))
    for pin in releases:
        print(
            "\t".join(
                (
                    pin.digest,
                    pin.origin,
                    pin.promoted_at,
                    pin.promoted_by,
                    str(pin.with_policies).lower(),
                )
            )
        )


@release_app.command("unpin")
def release_unpin(
    stack: Annotated[str, typer.Argument(help="The stack.")], cwd: CwdOption = Path(".")
) -> None:
    """Remove the pin from Pulumi.STACK.yaml: the next `pulumi up` builds from the code."""
    from agentform.promotion import PromotionError
    from agentform.release import RELEASE_KEY

    try:
        workspace = _workspace(cwd)
        name = workspace.known(stack)
        if RELEASE_KEY not in workspace.config(name):
            console.print(f"stack '{name}' is not pinned", markup=False)
            return
        workspace.remove_config(name, RELEASE_KEY)
    except PromotionError as exc:
        _failed(exc)
    console.print(
        f"Pulumi.{name}.yaml no longer pins a release; `pulumi up --stack {name}` deploys "
        "the code in the working tree",
        markup=False,
    )
