"""Coverage of the spec by a run: which actions the oracle took and which edges of the per-frame
status machine, ``(ring, status before, status after, action)``, its frames went through.

The numerator is observed on the reference model while it answers the suite: every spec action it
executes, with the status of each frame the action's ``Store`` updates write (read off the spec's
own updates, evaluated before and after the step). The denominator is the spec's status machine
(:mod:`nlmmap.spec.graphs`, the same function the diagrams use), restricted to the actions the
adapter protocol can drive with the SUT's features (:data:`ACTION_DRIVERS`). Where that module is
not available the report says so and gives the numerator alone: a coverage figure is never made up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from nlmmap.spec.abi import Status
from nlmmap.spec.expr import evaluate
from nlmmap.spec.system import Store

__all__ = ["Coverage", "ACTION_DRIVERS", "status_label", "drivable"]

STATUS_ARRAYS = {"rx_status": "rx", "tx_status": "tx"}

#: Spec action -> the SUT features under which the suite can make the oracle take it (alternatives:
#: any one set suffices; ``op:munmap`` is the optional munmap op), or None when no adapter request
#: leads to it (``abort``: only a service that frees ring messages undelivered does).
ACTION_DRIVERS: dict[str, tuple[frozenset[str], ...] | None] = {
    "set_rx_ring": (frozenset({"rx_ring"}),), "teardown_rx_ring": (frozenset({"rx_ring"}),),
    "set_tx_ring": (frozenset({"tx_ring"}),), "teardown_tx_ring": (frozenset({"tx_ring"}),),
    "mmap": (frozenset({"rx_ring"}), frozenset({"tx_ring"})),
    "munmap": (frozenset({"op:munmap", "rx_ring"}), frozenset({"op:munmap", "tx_ring"})),
    "set_no_enobufs": (frozenset({"no_enobufs"}),),
    # kernel-built messages (ACKs, ring deliveries) take the ring path
    "alloc": (frozenset({"rx_ring"}),), "alloc_full": (frozenset({"rx_ring"}),),
    "alloc_all_skip": (frozenset({"rx_ring", "skip"}),), "publish": (frozenset({"rx_ring"}),),
    "abort": None,
    "copy_claim": (frozenset({"rx_ring"}),), "copy_full": (frozenset({"rx_ring"}),),
    "copy_congested_kernel": (frozenset({"rx_ring"}),), "copy_refused": (frozenset({"rx_ring", "deliver_copy"}),),
    "queue_plain": (frozenset(),), "ack_alloc_failed": (frozenset({"rx_ring"}),),
    "recvmsg": (frozenset(),), "recvmsg_error": (frozenset({"rx_ring"}),), "recvmsg_empty": (frozenset(),),
    "poll": (frozenset(),),
    "release_frame": (frozenset({"rx_ring"}),), "skip_frame": (frozenset({"rx_ring", "skip"}),),
    "write_status": (frozenset({"rx_ring"}),),
    "fill_tx_frame": (frozenset({"tx_ring"}),), "write_tx": (frozenset({"tx_ring"}),),
    "tx_reject": (frozenset({"tx_ring"}),), "tx_copy": (frozenset({"tx_ring"}),),
    "tx_validate": (frozenset({"tx_ring"}),), "tx_act": (frozenset({"tx_ring"}),),
}


def status_label(v: int) -> str:
    """A status word as the status machine names it: the Status name, or ``other``."""
    try:
        return Status(v).name
    except ValueError:
        return "other"


def drivable(action: str, features: Iterable[str]) -> tuple[bool, str]:
    """Whether the suite can drive ``action`` with these features, and why not."""
    feats = set(features)
    drivers = ACTION_DRIVERS.get(action, ())
    if drivers is None:
        return False, "no adapter request leads to it"
    if drivers == ():
        return False, "not in the suite's table of drivable actions"
    for alt in drivers:
        if alt <= feats:
            return True, ""
    need = " or ".join("+".join(sorted(a)) or "(nothing)" for a in drivers)
    return False, f"needs {need}"


class Coverage:
    """Counts of spec actions and status-machine edges the oracle went through."""

    def __init__(self) -> None:
        self.actions: Counter[str] = Counter()
        self.edges: Counter[tuple[str, str, str, str]] = Counter()
        self.source = "none"

    def record(self, action: str, changes: Iterable[tuple[str, int, int, int]]) -> None:
        """One spec step: its action and the (ring, frame, status before, status after) it wrote."""
        self.actions[action] += 1
        for ring, _i, before, after in changes:
            self.edges[(ring, status_label(before), status_label(after), action)] += 1

    # ---- how the numbers are obtained from the oracle ------------------------------------------------
    def attach(self, kernel: Any, sock: Any) -> None:
        """Observe a model socket: through the oracle's observer if it has one, else by wrapping the
        socket's ``step`` so each spec action's status writes are read before and after it runs."""
        observe = getattr(kernel, "observe", None)
        if callable(observe):
            if self.source != "observer":
                self.source = "observer"
                observe(self._on_step)
            return
        self.source = "step wrapper"
        orig = sock.step
        system = sock.system
        view = sock.view

        def step(action: str, **params: Any) -> None:
            a = system.action(action)
            lookup = _lookup(view, params)
            writes = []
            for u in a.updates:
                if isinstance(u, Store) and u.array in STATUS_ARRAYS:
                    idx = evaluate(u.index, lookup)
                    writes.append((STATUS_ARRAYS[u.array], idx, view[u.array][idx]))
            orig(action, **params)
            self.record(action, [(r, i, b, view[r + "_status"][i]) for r, i, b in writes])

        sock.step = step

    def _on_step(self, action: str, actor: str, params: dict, changes: Iterable[Any]) -> None:
        """The oracle's per-step observer: (action, actor, params, frame changes)."""
        self.record(action, [(c[0], c[1], c[2], c[3]) for c in changes])

    # ---- the report -------------------------------------------------------------------------------------
    def summary(self, features: Iterable[str], *, variant: Any = None) -> dict[str, Any]:
        """Actions and edges hit, against what is reachable with ``features`` where that is known."""
        from nlmmap.spec.protocol import socket_system

        feats = set(features)
        system = socket_system(variant) if variant is not None else socket_system()
        reach, unreach = [], {}
        for a in system.actions:
            ok, why = drivable(a.name, feats)
            (reach.append(a.name) if ok else unreach.__setitem__(a.name, why))
        hit = sorted(a for a in self.actions if a in reach)
        actions = {"hit": len(hit), "reachable": len(reach), "percent": _pct(len(hit), len(reach)),
                   "missing": sorted(set(reach) - set(hit)), "unreachable": unreach,
                   "counts": dict(sorted(self.actions.items()))}
        edges_hit = sorted(self.edges)
        denom, why = _edge_denominator(system, feats, reach)
        edges: dict[str, Any] = {"hit": len(edges_hit),
                                 "observed": [list(e) + [self.edges[e]] for e in edges_hit]}
        if denom is None:
            edges.update(reachable=None, percent=None, missing=None,
                         note=f"numerator only: {why}")
        else:
            got = set(edges_hit) & denom
            edges.update(reachable=len(denom), percent=_pct(len(got), len(denom)),
                         missing=[list(e) for e in sorted(denom - got)], hit=len(got),
                         outside=[list(e) for e in sorted(set(edges_hit) - denom)])
        return {"source": self.source, "actions": actions, "edges": edges}


def _lookup(view: Any, params: dict) -> Any:
    def f(name: str) -> Any:
        return params[name] if name in params else view[name]
    return f


def _pct(a: int, b: int) -> float | None:
    return round(100.0 * a / b, 1) if b else None


def _edge_denominator(system: Any, features: set[str], reachable_actions: list[str]):
    """The status machine's edges whose action the suite can drive, from :mod:`nlmmap.spec.graphs`."""
    try:
        from nlmmap.spec import graphs  # type: ignore[attr-defined]
    except ImportError:
        return None, "nlmmap.spec.graphs (the per-frame status machine) is not available in this build"
    fn = getattr(graphs, "status_edges", None)
    if not callable(fn):
        return None, "nlmmap.spec.graphs has no status_edges()"
    try:
        edges = fn(system)
    except Exception as e:  # a denominator we cannot read is no denominator
        return None, f"nlmmap.spec.graphs.status_edges failed: {e}"
    ok = set(reachable_actions)
    out = set()
    for e in edges:
        ring, before, after, action = (e[0], e[1], e[2], e[3]) if not isinstance(e, dict) else \
            (e["ring"], e["before"], e["after"], e["action"])
        if action in ok and (ring == "rx" and "rx_ring" in features or ring == "tx" and "tx_ring" in features):
            if "skip" not in features and "SKIP" in (before, after):
                continue
            out.add((ring, str(before), str(after), action))
    return out, ""
