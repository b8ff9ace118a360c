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
        self._kernels: dict[int, tuple[Any, Any]] = {}  # id(kernel) -> (kernel, its spec analysis)
        self._last: dict[tuple[int, int], dict[str, Any]] = {}  # (kernel, socket) -> status words after its last step

    def record(self, action: str, edges: Iterable[tuple[str, str, str, str]]) -> None:
        """One spec step: its action and the status-machine edges ``(ring, before, after, action)``
        its frames went through."""
        self.actions[action] += 1
        for e in edges:
            self.edges[e] += 1
            self.recent.add(e)

    # ---- how the numbers are obtained from the oracle ------------------------------------------------
    def attach(self, kernel: Any, sock: Any = None) -> None:
        """Observe a model kernel (:meth:`nlmmap.model.socket.Kernel.observe`): every spec action any
        of its sockets takes, counted by :func:`nlmmap.spec.graphs.frame_changes` on the socket's
        status words before and after the step. Attaching a kernel twice observes it once; ``sock``
        (a socket about to be used) is snapshotted so its first step has a "before"."""
        from nlmmap.spec.graphs import analyse

        key = id(kernel)
        if key not in self._kernels:
            self._kernels[key] = (kernel, analyse(kernel.system))
            self.source = "observer"
            kernel.observe(lambda handle, step, k=kernel: self._on_step(k, handle, step))
        if sock is not None:
            self._last[(key, sock.handle)] = _snapshot(sock)

    def _on_step(self, kernel: Any, handle: int, step: Any) -> None:
        """The oracle's observer: ``step`` is a :class:`nlmmap.model.core.Step`. The state before it
        is the socket's status words after its previous step (the model installs a new ring's bytes,
        and drops a torn-down ring, just before the spec action that says so)."""
        from nlmmap.spec.graphs import frame_changes

        key = (id(kernel), handle)
        sock = kernel.sockets.get(handle)
        if sock is None:
            return
        now = _snapshot(sock)
        before = self._last.get(key)
        if before is None:  # never snapshotted: this step's own frame changes give the before-state
            before = _undo(now, step.frames)
        self._last[key] = now
        self.record(step.action, frame_changes(self._kernels[id(kernel)][1], before, now, step.action, step.params))

    # ---- the report -------------------------------------------------------------------------------------
    def summary(self, features: Iterable[str], *, system: Any = None) -> dict[str, Any]:
        """Actions and edges hit, against what is reachable with ``features``: the spec's status
        machine (:func:`nlmmap.spec.graphs.frame_status_edges`) explored with the actions the suite
        can drive, minus the :data:`ADAPTER_LIMITS` (listed with their reasons), compared by
        :func:`nlmmap.spec.graphs.edge_coverage`."""
        from nlmmap.spec.protocol import socket_system

        feats = set(features)
        system = socket_system() if system is None else system
        reach, unreach = [], {}
        for a in system.actions:
            ok, why = drivable(a.name, feats)
            (reach.append(a.name) if ok else unreach.__setitem__(a.name, why))
        hit = sorted(a for a in self.actions if a in reach)
        actions = {"hit": len(hit), "reachable": len(reach), "percent": _pct(len(hit), len(reach)),
                   "missing": sorted(set(reach) - set(hit)), "unreachable": unreach,
                   "counts": dict(sorted(self.actions.items()))}
        observed = sorted(self.edges)
        edges: dict[str, Any] = {"hit": len(observed), "observed": [list(e) + [self.edges[e]] for e in observed]}
        denom, excluded, why = _edge_denominator(system, feats, reach)
        if denom is None:
            edges.update(reachable=None, percent=None, missing=None, note=f"numerator only: {why}")
        else:
            from nlmmap.spec.graphs import edge_coverage

            cov = edge_coverage(denom, observed)
            edges.update(hit=cov["covered"], reachable=cov["total"], percent=_pct(cov["covered"], cov["total"]),
                         missing=[list(e) for e in cov["missing"]],
                         outside=[list(e) for e in cov["unexpected"]],
                         excluded=[list(e) + [r] for e, r in sorted(excluded.items())],
                         limits=adapter_limits_doc(feats))
        return {"source": self.source, "actions": actions, "edges": edges}


def _snapshot(sock: Any) -> dict[str, Any]:
    """What :func:`nlmmap.spec.graphs.frame_changes` reads of a model socket: each ring's frame
    count and status words."""
    st = sock.spec_state
    return {"rx_frame_nr": st["rx_frame_nr"], "rx_status": st["rx_status"],
            "tx_frame_nr": st["tx_frame_nr"], "tx_status": st["tx_status"]}


def _undo(now: dict[str, Any], frames: Iterable[Any]) -> dict[str, Any]:
    """The status words before a step, from those after it and the step's frame changes."""
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in now.items()}
    for f in frames:
        arr = out[f"{f.ring}_status"]
        if 0 <= f.index < len(arr):
            arr[f.index] = f.status_before
    return out


def _pct(a: int, b: int) -> float | None:
    return round(100.0 * a / b, 1) if b else None


def _edge_denominator(system: Any, features: set[str], reachable_actions: list[str]):
    """The status machine's edges reachable with the actions the suite can drive
    (:func:`nlmmap.spec.graphs.frame_status_edges`, re-explored under that restriction), without
    the edges of rings or statuses the SUT lacks and those :data:`ADAPTER_LIMITS` exclude.
    Returns (edges, excluded edge -> reason, why there is no denominator)."""
    key = (system.name, tuple(sorted(system.variant.items())), tuple(sorted(reachable_actions)))
    if key not in _DENOMINATORS:
        try:
            from nlmmap.spec.graphs import frame_status_edges
        except ImportError:
            return None, {}, "nlmmap.spec.graphs (the per-frame status machine) is not available in this build"
        try:
            _DENOMINATORS[key] = frame_status_edges(system, actions=sorted(reachable_actions))
        except Exception as e:  # a denominator we cannot compute is no denominator
            return None, {}, f"nlmmap.spec.graphs.frame_status_edges failed: {type(e).__name__}: {e}"
    out, excluded = set(), {}
    for e in _DENOMINATORS[key]:
        ring, before, after, action = e
        if f"{ring}_ring" not in features:
            excluded[e] = f"the SUT lacks {ring}_ring"
            continue
        if "skip" not in features and "SKIP" in (before, after):
            excluded[e] = "the SUT lacks skip"
            continue
        why = next((why for pred, lift, why in ADAPTER_LIMITS if pred(e) and not lift <= features), None)
        if why is not None:
            excluded[e] = why
            continue
        out.add((ring, str(before), str(after), action))
    return out, excluded, ""


#: frame_status_edges results by (system, variant, actions): the exploration costs a second or two
_DENOMINATORS: dict[tuple, frozenset] = {}


def adapter_limits_doc(features: Iterable[str]) -> list[str]:
    """The adapter limits in force for these features (for the report)."""
    feats = set(features)
    return [why for _, lift, why in ADAPTER_LIMITS if not lift <= feats]
