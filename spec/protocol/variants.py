"""History switches of the one spec: which kernel a system describes (all off = Linux 4.5).

* ``tx_zero_copy`` (3.10-3.18): TX validates the message in the shared frame and uses it later;
* ``skip_broken`` (before 4.4): allocation does not step over SKIP frames;
* ``poll_head_minus_one`` (before 4.4): POLLIN iff the frame behind the head is not UNUSED;
* ``dump_offset_bug`` (4.4.34): dump data is placed away from frame + 24 (model only);
* ``queue_alloc_outside_lock`` (mainline nfqueue, on by default) versus its fix
  ``queue_alloc_under_lock`` (the extended spinlock).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

VARIANT_SWITCHES = ("tx_zero_copy", "skip_broken", "poll_head_minus_one", "dump_offset_bug",
                    "queue_alloc_outside_lock")


@dataclass(frozen=True)
class Variant:
    """History switches; all False is the reference behaviour (Linux 4.5). For the queue service,
    ``queue_alloc_outside_lock`` True is mainline nfqueue, False the extended-spinlock fix."""

    tx_zero_copy: bool = False
    skip_broken: bool = False
    poll_head_minus_one: bool = False
    dump_offset_bug: bool = False
    queue_alloc_outside_lock: bool = True

    @classmethod
    def from_names(cls, names: list[str] | tuple[str, ...]) -> Variant:
        """Build from switch names (``"queue_alloc_under_lock"`` turns the queue fix on)."""
        kw: dict[str, bool] = {}
        for n in names:
            if n == "queue_alloc_under_lock":
                kw["queue_alloc_outside_lock"] = False
            elif n in VARIANT_SWITCHES:
                kw[n] = True
            else:
                from ..errors import NetlinkError

                raise NetlinkError("EINVAL", f"unknown variant {n!r}; known: "
                                             f"{', '.join(VARIANT_SWITCHES + ('queue_alloc_under_lock',))}")
        return cls(**kw)

    def as_dict(self) -> dict[str, bool]:
        """The switches as a plain dict."""
        return {n: getattr(self, n) for n in VARIANT_SWITCHES}



#: The reference behaviour: every switch off (the queue service in its mainline form).
LINUX_4_5 = Variant()


def _manifest() -> dict:
    from importlib.resources import files

    return json.loads(files("nlmmap.spec").joinpath("expected.json").read_text())


#: The property each history switch is known to break (the historical flaws, kept visible), read
#: from the expected-results manifest ``nlmmap/spec/expected.json``.
EXPECTED_VIOLATIONS: dict[str, tuple[str, ...]] = {
    name: tuple(entry["breaks"]) for name, entry in _manifest()["history_switches"].items() if entry["breaks"]}


def expected_violations(variant: Variant) -> frozenset[str]:
    """Invariants and step properties the switches of ``variant`` are known to break."""
    on = variant.as_dict()
    return frozenset(p for sw, props in EXPECTED_VIOLATIONS.items() if on.get(sw) for p in props)


