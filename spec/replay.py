"""``nlmmap replay``: re-run a saved ITF trace on a concrete state, on the executable spec.

The first ITF state becomes a concrete state (built by a pluggable factory); each later state's
``mbt::actionTaken`` is taken with its ``mbt::nondetPicks`` through
:func:`nlmmap.spec.system.apply_action` (or another ``apply``), and the invariants (after each
step) and step properties (before it) that break are collected, with every step where the
replayed state disagrees with the recorded one. So another executable model can be plugged in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .catalog import system_from_meta
from .itf import ACTION_KEY, PICKS_KEY, decode_value
from .system import Action, DefaultArray, MapState, System, apply_action, violated_invariants, violated_step_properties

__all__ = ["ReplayResult", "replay", "map_state_factory"]


@dataclass(frozen=True)
class ReplayResult:
    """Outcome of a replay: properties broken (in order of appearance), the expected one, and
    states where the replayed state disagrees with the recorded one."""

    expected: str | None
    violated: tuple[tuple[int, str], ...]
    mismatches: tuple[tuple[int, str], ...]
    steps: int

    @property
    def reproduced(self) -> bool:
        """The expected property is broken, at the last step, and the recorded states agree."""
        return bool(self.expected) and any(n == self.expected and i == self.steps for i, n in self.violated) \
            and not self.mismatches

    @property
    def exit_code(self) -> int:
        """1 when a property breaks (the trace is a counterexample), 0 when none does."""
        return 1 if self.reproduced or self.violated else 0

    def text(self, name: str = "trace") -> str:
        """What broke at which step, what differs, and the verdict line for the file ``name``."""
        lines = [f"step {i}: {n} violated" for i, n in self.violated]
        lines += [f"step {i}: replayed {n} differs from the recorded state" for i, n in self.mismatches]
        verdict = "reproduced" if self.reproduced else "NOT reproduced"
        lines.append(f"nlmmap replay: {name}: expected {self.expected} -> {verdict} ({self.steps} steps)")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for ``--json``."""
        return {"tool": "nlmmap replay", "expected": self.expected, "reproduced": self.reproduced,
                "violated": [{"step": i, "property": n} for i, n in self.violated],
                "mismatches": [{"step": i, "variable": n} for i, n in self.mismatches], "steps": self.steps}


def map_state_factory(system: System, first: Mapping[str, Any], defaults: Mapping[str, Any]) -> MapState:
    """The default concrete state: a :class:`MapState` with arrays as :class:`DefaultArray`."""
    values = {}
    for v in system.constants + system.state:
        x = first[v.name]
        values[v.name] = DefaultArray(defaults.get(v.name, False if v.sort == "bool_array" else 0), x) \
            if v.sort.endswith("array") else x
    return MapState(values)


def replay(doc: Mapping[str, Any], *, system: System | None = None,
           state_factory: Callable[[System, Mapping[str, Any], Mapping[str, Any]], Any] = map_state_factory,
           apply: Callable[[Action, Any, Mapping[str, Any]], None] = apply_action) -> ReplayResult:
    """Re-run an ITF trace (see the module docstring); ``system`` defaults to the one named in
    the trace's ``#meta``. The state object only needs ``state[name]`` plus what ``apply`` uses."""
    meta = doc.get("#meta", {})
    sysm = system or system_from_meta(meta)
    user = str(meta.get("user") or "any")
    states = [decode_value(s) for s in doc["states"]]
    st = state_factory(sysm, states[0], meta.get("defaults", {}))
    violated: list[tuple[int, str]] = [(0, n) for n in violated_invariants(sysm, st, user=user)]
    mismatches: list[tuple[int, str]] = []
    for i, raw in enumerate(doc["states"][1:], start=1):
        a = sysm.action(raw[ACTION_KEY])
        picks = decode_value(raw.get(PICKS_KEY, {}))
        violated += [(i, n) for n in violated_step_properties(sysm, a, st, picks, user=user)]
        apply(a, st, picks)
        violated += [(i, n) for n in violated_invariants(sysm, st, user=user)]
        rec = states[i]
        for v in sysm.constants + sysm.state:
            want = rec.get(v.name)
            if want is None:
                continue
            if isinstance(want, dict):
                if any(st[v.name][k] != x for k, x in want.items()):
                    mismatches.append((i, v.name))
            elif st[v.name] != want:
                mismatches.append((i, v.name))
    return ReplayResult(meta.get("invariant"), tuple(violated), tuple(mismatches), len(doc["states"]) - 1)
