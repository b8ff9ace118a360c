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
from collections.abc import Callable, Iterable
from typing import Any

from nlmmap.spec.abi import Status

__all__ = ["Coverage", "ACTION_DRIVERS", "status_label", "drivable"]

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


#: Names the status machine gives a frame that holds no named status, and one outside any ring.
OTHER, ABSENT = "OTHER", "ABSENT"


#: Edges of the spec's status machine that no sequence of adapter requests can produce, whatever the
#: SUT: (predicate on (ring, before, after, action), the SUT features that lift it, why).
ADAPTER_LIMITS: tuple[tuple[Callable[[tuple[str, str, str, str]], bool], frozenset[str], str], ...] = (
    (lambda e: e[3] == "publish" and e[1] != "RESERVED", frozenset({"never"}),
     "the kernel claims and publishes a frame within one request (deliver, an ACK): no user write falls between"),
    (lambda e: e[3].startswith("teardown_") and e[1] not in ("UNUSED", "VALID", "COPY") if e[0] == "rx"
     else e[3].startswith("teardown_") and e[1] != "UNUSED", frozenset({"op:munmap"}),
     "only a user write (through a mapping) gives a frame that status, and a mapped socket keeps its rings "
     "unless it can munmap"),
    (lambda e: e[0] == "rx" and e[3] == "write_status" and (e[2] == "UNUSED" and e[1] in ("VALID", "COPY", "SKIP")
                                                           or (e[1], e[2]) == ("VALID", "SKIP")), frozenset({"never"}),
     "the oracle reads a user's UNUSED over a VALID/COPY/SKIP frame as release_frame and SKIP over VALID as "
     "skip_frame (the same bytes, the spec's well-behaved name)"),
    (lambda e: e[0] == "tx" and e[3] == "write_tx" and (e[1], e[2]) == ("UNUSED", "VALID"), frozenset({"never"}),
     "the oracle reads a user's VALID over an UNUSED TX frame as fill_tx_frame"),
)


def status_label(v: int | None) -> str:
    """A status word as the status machine names it: the Status name, OTHER, or ABSENT (no ring)."""
    if v is None:
        return ABSENT
    try:
        return Status(v).name
    except ValueError:
        return OTHER


def _changes(before: dict[str, list[int]],
             after: dict[str, list[int]]) -> list[tuple[str, int, int | None, int | None]]:
    """Frames whose status (or presence in a ring) differs between two snapshots."""
    out = []
    for ring in ("rx", "tx"):
        b, a = before[ring], after[ring]
        for i in range(max(len(b), len(a))):
            x = b[i] if i < len(b) else None
            y = a[i] if i < len(a) else None
            if status_label(x) != status_label(y):
                out.append((ring, i, x, y))
    return out


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
        self.recent: set[tuple[str, str, str, str]] = set()  # edges of the current example (for target())

    def record(self, action: str, changes: Iterable[tuple[str, int, int, int]]) -> None:
        """One spec step: its action and the (ring, frame, status before, status after) it wrote."""
        self.actions[action] += 1
        for ring, _i, before, after in changes:
            e = (ring, status_label(before), status_label(after), action)
            self.edges[e] += 1
            self.recent.add(e)

    # ---- how the numbers are obtained from the oracle ------------------------------------------------
    def attach(self, kernel: Any, sock: Any) -> None:
        """Observe a model socket: through the oracle's observer if it has one, else by wrapping the
        socket's ``step`` so the status of every frame is read before and after each spec action."""
        observe = getattr(kernel, "observe", None)
        if callable(observe):
            if self.source != "observer":
                self.source = "observer"
                observe(self._on_step)
            return
        self.source = "step wrapper"
        orig = sock.step

        def snapshot() -> dict[str, list[int]]:
            return {"rx": sock.statuses("rx"), "tx": sock.statuses("tx")}

        # "before" is the state after the previous step: the model installs a new ring's bytes (and
        # drops a torn-down ring) just before it takes the spec action that says so
        last = [snapshot()]

        def step(action: str, **params: Any) -> None:
            orig(action, **params)
            now = snapshot()
            self.record(action, _changes(last[0], now))
            last[0] = now

        sock.step = step

    def _on_step(self, action: Any, actor: str = "", params: Any = None, changes: Iterable[Any] = ()) -> None:
        """The oracle's per-step observer: (action, actor, params, frame changes (ring, index,
        status_before, status_after)), as arguments or as one record with those fields."""
        if not isinstance(action, str):  # one record
            rec = action
            action, changes = getattr(rec, "action", ""), getattr(rec, "changes", ()) or getattr(rec, "frames", ())
        out = []
        for c in changes:
            if isinstance(c, (tuple, list)):
                out.append((c[0], c[1], c[2], c[3]))
            else:
                out.append((c.ring, c.index, c.status_before,
                            c.status_after))
        self.record(action, out)

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
            edges.update(reachable=len(denom), percent=_pct(len(got), len(denom)), excluded=adapter_limits_doc(feats),
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
    """The status machine's edges reachable with the actions the suite can drive
    (:func:`nlmmap.spec.graphs.frame_status_edges`, re-explored under that restriction)."""
    try:
        from nlmmap.spec import graphs  # type: ignore[attr-defined]
    except ImportError:
        return None, "nlmmap.spec.graphs (the per-frame status machine) is not available in this build"
    fn = getattr(graphs, "frame_status_edges", None)
    if not callable(fn):
        return None, "nlmmap.spec.graphs has no frame_status_edges()"
    try:
        edges = fn(system, actions=sorted(reachable_actions))
    except Exception as e:  # a denominator we cannot compute is no denominator
        return None, f"nlmmap.spec.graphs.frame_status_edges failed: {type(e).__name__}: {e}"
    out = set()
    for e in edges:
        ring, before, after, action = e
        if f"{ring}_ring" not in features:
            continue
        if "skip" not in features and "SKIP" in (before, after):
            continue
        if any(pred(e) and not lift <= features for pred, lift, _ in ADAPTER_LIMITS):
            continue
        out.add((ring, str(before), str(after), action))
    return out, ""


def adapter_limits_doc(features: Iterable[str]) -> list[str]:
    """The adapter limits in force for these features (for the report)."""
    feats = set(features)
    return [why for _, lift, why in ADAPTER_LIMITS if not lift <= feats]
