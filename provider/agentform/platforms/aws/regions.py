"""Where a deployment runs on AWS: `location` policies -> a region, `flavor` -> an architecture.

The README's "AWS" section prints this table; keep them in step."""

from __future__ import annotations

from collections.abc import Iterable

# Country (ISO 3166-1 alpha-2, as in `agentform_runtime.specs.LOCATIONS`) -> AWS regions in it.
# Countries without an AWS region map to none: a policy allowing only those fails at preview.
REGIONS_BY_COUNTRY: dict[str, tuple[str, ...]] = {
    "us": ("us-east-1", "us-east-2", "us-west-1", "us-west-2"),
    "ca": ("ca-central-1", "ca-west-1"),
    "mx": ("mx-central-1",),
    "ie": ("eu-west-1",),
    "gb": ("eu-west-2",),
    "fr": ("eu-west-3",),
    "de": ("eu-central-1",),
    "ch": ("eu-central-2",),
    "it": ("eu-south-1",),
    "es": ("eu-south-2",),
    "se": ("eu-north-1",),
    "nl": (),
    "pl": (),
    "jp": ("ap-northeast-1", "ap-northeast-3"),
    "kr": ("ap-northeast-2",),
    "sg": ("ap-southeast-1",),
    "in": ("ap-south-1", "ap-south-2"),
    "au": ("ap-southeast-2", "ap-southeast-4"),
    "nz": ("ap-southeast-6",),
    "br": ("sa-east-1",),
    "cl": (),
}

ARCHITECTURES = ("x86_64", "arm64")


class PlacementError(ValueError):
    """The effective policies allow nothing AWS Lambda offers."""


def allowed_regions(countries: Iterable[str] | None) -> list[str] | None:
    """The regions in these countries, in the table's order; None when unrestricted."""
    if countries is None:
        return None
    wanted = set(countries)
    return [r for c, regions in REGIONS_BY_COUNTRY.items() if c in wanted for r in regions]


def region_for(countries: Iterable[str] | None, home: str) -> str:
    """The home region when the policies allow it, else the first allowed region."""
    allowed = allowed_regions(countries)
    if allowed is None or home in allowed:
        return home
    if not allowed:
        raise PlacementError(
            f"the location policies allow {sorted(set(countries or ()))}, where AWS has no "
            "region; allow a country or continent from the README's AWS region table"
        )
    return allowed[0]


def architecture_for(flavors: Iterable[str] | None) -> str:
    """`arm64` when the policies allow only that architecture, else `x86_64`."""
    if flavors is None:
        return "x86_64"
    allowed = set(flavors)
    if "x86_64" in allowed:
        return "x86_64"
    if "arm64" in allowed:
        return "arm64"
    raise PlacementError(
        f"the flavor policies allow {sorted(allowed)}; AWS Lambda runs on CPUs only "
        "(`cpu`, `x86_64` or `arm64`)"
    )


def placement_failure(effective: dict[str, object], home: str | None) -> str | None:
    """Why these effective policies cannot run on AWS Lambda, or None when they can."""
    locations = effective.get("locations")
    flavors = effective.get("flavors")
    try:
        region_for(locations if isinstance(locations, list) else None, home or "us-east-1")
        architecture_for(flavors if isinstance(flavors, list) else None)
    except PlacementError as exc:
        return str(exc)
    return None
