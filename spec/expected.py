"""The expected-results manifest ``nlmmap/spec/expected.json``, read once for every reader.

Like the TLA+ examples' manifest, expected results are data: what each history switch breaks
(``history_switches``, read by :data:`nlmmap.spec.protocol.EXPECTED_VIOLATIONS`) and what
``nlmmap bmc`` finds per variant (``bmc``, read by the tests and the proof benchmark as
:func:`bmc_runs`), so that no test or benchmark restates a result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .verdict import Verdict

__all__ = ["manifest", "BmcRun", "bmc_runs"]


@lru_cache(maxsize=1)
def _text() -> str:
    from importlib.resources import files

    return files("nlmmap.spec").joinpath("expected.json").read_text()


def manifest() -> dict[str, Any]:
    """The whole manifest as plain JSON data (a fresh copy)."""
    return json.loads(_text())


@dataclass(frozen=True)
class BmcRun:
    """One expected ``nlmmap bmc`` run: search ``variant`` to ``depth`` steps (only ``properties``
    if any, as ``--property``), ring sizes <= ``max_n``. ``verdict`` FAILED: a violation of one of
    ``violates`` is found within ``depth`` steps; OK: none up to ``depth``."""

    variant: str
    verdict: Verdict
    depth: int
    properties: tuple[str, ...] = ()
    violates: tuple[str, ...] = ()
    max_n: int = 3

    @property
    def label(self) -> str:
        """``variant`` plus the properties searched, e.g. ``default --property TxActsOnValidated``."""
        return self.variant + "".join(f" --property {p}" for p in self.properties)


def bmc_runs() -> list[BmcRun]:
    """The ``bmc`` section as :class:`BmcRun` records, in manifest order (``ValueError`` naming the
    entry if one is malformed)."""
    words = {v.search_text: v for v in Verdict}
    out = []
    for variant, runs in manifest()["bmc"].items():
        if variant.startswith("#"):
            continue
        for i, r in enumerate(runs):
            try:
                run = BmcRun(variant, words[r["verdict"]], int(r["depth"]), tuple(r.get("properties", ())),
                             tuple(r.get("violates", ())), int(r.get("max_n", 3)))
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"expected.json bmc.{variant}[{i}]: malformed entry {r!r} ({e})") from e
            if (run.verdict is Verdict.FAILED) != bool(run.violates) or run.verdict in (Verdict.UNKNOWN, Verdict.ERROR):
                raise ValueError(f"expected.json bmc.{variant}[{i}]: a 'violation' names what it violates "
                                 f"('violates'), a 'none' does not")
            out.append(run)
    return out
