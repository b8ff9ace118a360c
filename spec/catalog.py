"""The transition systems this package ships, by name: the one place the engines meet a protocol.

The proof engines (:mod:`.prove`, :mod:`.bmc`, :mod:`.replay`) take any
:class:`~nlmmap.spec.system.System`; what they need to go from a name to a system (a trace's
``#meta.system`` and ``#meta.variant``, a CLI ``--variant``) or back is here. A second protocol
(AF_PACKET next) plugs in by adding its systems to :data:`SYSTEMS` and its variant names to
:func:`variant_names` / :func:`for_variant`; no engine changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .system import System

__all__ = ["SYSTEMS", "build", "for_variant", "variant_names", "variant_choices", "system_from_meta",
           "default_proof_systems", "readable_hints", "FRAME_SIZES"]


def _socket(names: Iterable[str]) -> System:
    from .protocol import Variant, socket_system

    return socket_system(Variant.from_names(names))


def _queue(names: Iterable[str]) -> System:
    from .protocol import Variant, queue_system

    return queue_system(Variant.from_names(names))


#: System name -> builder from variant names.
SYSTEMS: Mapping[str, Callable[[Iterable[str]], System]] = {"socket": _socket, "queue": _queue}


def build(system: str, variant: Iterable[str] = ()) -> System:
    """The system called ``system`` with the named variant switches (``NetlinkError`` EINVAL
    naming the known systems or variants otherwise)."""
    if system not in SYSTEMS:
        from .errors import NetlinkError

        raise NetlinkError("EINVAL", f"unknown system {system!r}; known: {', '.join(SYSTEMS)}")
    return SYSTEMS[system](list(variant))


def variant_choices() -> tuple[str, ...]:
    """Every name ``--variant`` accepts (each selects its system)."""
    from .protocol import Variant

    return Variant.names()


def for_variant(name: str) -> System:
    """The system a variant name is about, built with that variant (``default``: the socket as in
    Linux 4.5; a queue-service switch or fix: the queue service)."""
    from .protocol import Variant

    return build(Variant.system_of(name), [name])


def variant_names(system: System) -> list[str]:
    """The variant names that rebuild ``system`` with :func:`build` (empty for its default)."""
    from .protocol import Variant

    return Variant.from_mapping(system.variant).names_for(system.name)


def system_from_meta(meta: Mapping[str, Any]) -> System:
    """The system a trace was produced on (from ``#meta.system`` and ``#meta.variant``)."""
    return build(str(meta.get("system", "socket")), [str(x) for x in meta.get("variant", [])])


def default_proof_systems() -> list[System]:
    """What ``nlmmap prove`` checks by default: the socket (Linux 4.5) and the queue service with
    the under-lock fix (mainline nfqueue is the known counterexample; see ``nlmmap bmc``)."""
    return [build("socket"), build("queue", ["queue_alloc_under_lock"])]


#: Frame sizes a person configures (one page first: a ring of any number of frames has a geometry
#: with it, one frame per block), for the capacities ``nlmmap bmc`` shows.
FRAME_SIZES = (4096, 2048, 16384)


def readable_hints(system: System) -> dict[str, tuple[int, ...]]:
    """Values a person would write, by action parameter name, most preferred first: what
    :mod:`nlmmap.spec.bmc_readable` tries before round numbers. For the socket: frame capacities of
    real geometries (frame size - NL_MMAP_HDRLEN, so that ``nlmmap replay --on model`` maps each ring
    to a kernel geometry) and message lengths starting at a bare netlink header."""
    if system.name != "socket":
        return {}
    from .abi import NL_MMAP_HDRLEN
    from .netlink import NLMSG_HDRLEN

    caps = tuple(fs - NL_MMAP_HDRLEN for fs in FRAME_SIZES)
    lengths = (NLMSG_HDRLEN, 20, 32, 64, 100, 256, 1000, 1500, 2000, 4000, 5000, 8000, 10000)
    return {"cap": caps, "len": lengths, "size": lengths}
