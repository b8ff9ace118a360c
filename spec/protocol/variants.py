"""History switches of the one spec: which kernel a system describes (all off = Linux 4.5).

* ``tx_zero_copy`` (3.10-3.18): TX validates the message in the shared frame and uses it later;
* ``skip_broken`` (before 4.4): allocation does not step over SKIP frames;
* ``poll_head_minus_one`` (before 4.4): POLLIN iff the frame behind the head is not UNUSED;
* ``dump_offset_bug`` (4.4.34): dump data is placed away from frame + 24 (model only);
* ``queue_alloc_outside_lock`` (mainline nfqueue, on by default) versus its fix
  ``queue_alloc_under_lock`` (the extended spinlock).

:meth:`Variant.names` lists every name the CLI, traces and :meth:`Variant.from_names` accept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

#: The switch names, as fields of :class:`Variant`.
VARIANT_SWITCHES = ("tx_zero_copy", "skip_broken", "poll_head_minus_one", "dump_offset_bug",
                    "queue_alloc_outside_lock")

#: The system each switch changes (``nlmmap.spec.protocol.system_by_name``).
SWITCH_SYSTEM: dict[str, str] = {"tx_zero_copy": "socket", "skip_broken": "socket", "poll_head_minus_one": "socket",
                                 "dump_offset_bug": "socket", "queue_alloc_outside_lock": "queue"}

#: Names that turn off a switch that is on by default: the fix of a flaw the kernel kept.
FIXES: dict[str, str] = {"queue_alloc_under_lock": "queue_alloc_outside_lock"}

#: The name of the reference behaviour (every switch at its default).
DEFAULT = "default"


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
    def names(cls) -> tuple[str, ...]:
        """Every variant name: ``default``, each switch, and each fix (``queue_alloc_under_lock``)."""
        return (DEFAULT,) + VARIANT_SWITCHES + tuple(FIXES)

    @classmethod
    def from_names(cls, names: Iterable[str]) -> Variant:
        """Build from variant names (``default`` changes nothing; a fix turns its switch off)."""
        kw: dict[str, bool] = {}
        for n in names:
            if n in FIXES:
                kw[FIXES[n]] = False
            elif n in VARIANT_SWITCHES:
                kw[n] = True
            elif n != DEFAULT:
                from ..errors import NetlinkError

                raise NetlinkError("EINVAL", f"unknown variant {n!r}; known: {', '.join(cls.names())}")
        return cls(**kw)

    @classmethod
    def from_mapping(cls, switches: Mapping[str, bool]) -> Variant:
        """Build from a ``{switch: on}`` mapping such as :attr:`nlmmap.spec.system.System.variant`
        (switches it does not name keep their defaults)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: bool(v) for k, v in switches.items() if k in known})

    @staticmethod
    def system_of(name: str) -> str:
        """The system a variant name is about: ``socket`` for ``default`` and the socket switches,
        ``queue`` for the queue service's switch and fix."""
        if name == DEFAULT:
            return "socket"
        if name in FIXES:
            return SWITCH_SYSTEM[FIXES[name]]
        if name in SWITCH_SYSTEM:
            return SWITCH_SYSTEM[name]
        from ..errors import NetlinkError

        raise NetlinkError("EINVAL", f"unknown variant {name!r}; known: {', '.join(Variant.names())}")

    def names_for(self, system: str) -> list[str]:
        """The variant names that rebuild this variant's ``system`` with :meth:`from_names`: the
        switches of that system that differ from their default (empty for the default)."""
        base = Variant()
        out = []
        for sw in VARIANT_SWITCHES:
            if SWITCH_SYSTEM[sw] != system or getattr(self, sw) == getattr(base, sw):
                continue
            out.append(sw if getattr(self, sw) else next(f for f, s in FIXES.items() if s == sw))
        return sorted(out)

    def as_dict(self) -> dict[str, bool]:
        """The switches as a plain dict."""
        return {n: getattr(self, n) for n in VARIANT_SWITCHES}


#: The reference behaviour: every switch off (the queue service in its mainline form).
LINUX_4_5 = Variant()


def _manifest() -> dict:
    from ..expected import manifest

    return manifest()


#: The property each history switch is known to break (the historical flaws, kept visible), read
#: from the expected-results manifest ``nlmmap/spec/expected.json``.
EXPECTED_VIOLATIONS: dict[str, tuple[str, ...]] = {
    name: tuple(entry["breaks"]) for name, entry in _manifest()["history_switches"].items() if entry["breaks"]}


def expected_violations(variant: Variant) -> frozenset[str]:
    """Invariants and step properties the switches of ``variant`` are known to break."""
    on = variant.as_dict()
    return frozenset(p for sw, props in EXPECTED_VIOLATIONS.items() if on.get(sw) for p in props)
