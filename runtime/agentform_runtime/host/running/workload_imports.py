"""What a worker may import: its artifact, the standard library, and the packages a workload
also has on Lambda (`agentform_runtime.lambda_packages`: Lambda's runtime and Agentform's
runtime layer). Code that imports anything else from the host's environment fails here with
the ModuleNotFoundError it would meet on Lambda, instead of only after deploying there."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import os
import sys
from collections.abc import Iterator, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

from agentform_runtime import lambda_packages

_PACKAGE_DIRS = ("site-packages", "dist-packages")
_EVERY_DISTRIBUTION = importlib.metadata.DistributionFinder.Context()


class WorkloadPackages(importlib.abc.MetaPathFinder):
    """Finds the allowed top-level packages (and their metadata) in this environment's
    site-packages, once `confine` has taken site-packages off `sys.path`."""

    def __init__(self) -> None:
        distributions = lambda_packages.workload_distributions()
        self.distributions = frozenset(distributions)
        self.names = frozenset(lambda_packages.top_level_names(distributions))
        self.package_dirs = [p for p in sys.path if os.path.basename(p) in _PACKAGE_DIRS]

    def confine(self, task_root: str) -> None:
        """In a worker, before its code loads: `sys.path` becomes the task root and the
        standard library, and this finder serves the allowed packages."""
        stdlib = (sys.base_prefix, sys.base_exec_prefix)
        sys.path[:] = [
            task_root,
            *(
                p
                for p in sys.path
                if p != task_root
                and p.startswith(stdlib)
                and not any(part in _PACKAGE_DIRS for part in p.split(os.sep))
            ),
        ]
        # An editable install's finder maps its packages to the source tree: not a workload's.
        sys.meta_path[:] = [
            f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")
        ]
        sys.meta_path.append(self)
        sys.path_importer_cache.clear()
        importlib.invalidate_caches()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if path is not None or fullname not in self.names:
            return None  # a submodule (its package's path finds it) or not allowed
        return importlib.machinery.PathFinder.find_spec(fullname, self.package_dirs)

    def find_distributions(
        self,
        context: importlib.metadata.DistributionFinder.Context = _EVERY_DISTRIBUTION,
    ) -> Iterator[importlib.metadata.Distribution]:
        wanted = context.name
        if wanted is not None and lambda_packages.normalized(wanted) not in self.distributions:
            return iter(())
        found = importlib.metadata.MetadataPathFinder.find_distributions(
            importlib.metadata.DistributionFinder.Context(name=wanted, path=self.package_dirs)
        )
        return (
            d for d in found if lambda_packages.normalized(d.metadata["Name"]) in self.distributions
        )
