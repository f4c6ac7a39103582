"""Families that installed distributions offer: entry points of the group `dlserve.families`, each
`task = python.package` (the package declares `FAMILY`, as for DLSERVE_FAMILIES). A distribution declares
them in its pyproject.toml:

    [project.entry-points."dlserve.families"]
    regression = "dlserve_regression"

`models.register_all` reads them beside the setting; see docs/families.md."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import cache
from importlib import metadata

GROUP = "dlserve.families"
_PACKAGE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


@dataclass(frozen=True)
class Offered:
    task: str
    package: str
    where: str  # names the entry and its distribution, for the one line that stops start-up

    @property
    def is_package(self) -> bool:
        return bool(_PACKAGE.fullmatch(self.package))


def offered() -> tuple[Offered, ...]:
    """Every entry point of the group on sys.path now, in the order of distribution and entry names."""
    return _scan(tuple(sys.path))


@cache  # reading every distribution's metadata takes milliseconds; sys.path changes are seen
def _scan(path: tuple[str, ...]) -> tuple[Offered, ...]:
    found = []
    for ep in metadata.entry_points(group=GROUP):
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "an unnamed distribution"
        found.append(Offered(ep.name, ep.value.strip(),
                             f"entry point '{ep.name} = {ep.value}' of {dist} (group {GROUP})"))
    return tuple(sorted(found, key=lambda o: o.where))
