"""Replay an ITF trace on the byte-level reference model (``nlmmap replay --on model``).

The trace's actions become what a user and a kernel do to a model socket's bytes, and the outcome
is read off the model: the violations it records (a known flaw's invariant breaking, checked by the
model after every step) and, after every step, whether the model's spec view (status words, nm_len
and payload read from the frames, the rest of its state) equals the trace's state.

* **socket traces**: setup through ``setsockopt`` with a real ring geometry per ring (frame size =
  the trace's capacity + ``NL_MMAP_HDRLEN``, blocks of whole pages: :func:`geometry_for`), ``mmap``,
  ``munmap``; the user's frame writes as bytes poked into the mapping (a TX frame: header and
  payload; an RX frame: its status word), the model deciding which spec action a write is; the
  kernel's RX paths through the model's calls (``ring_alloc``, ``ring_publish`` writing header
  and payload, ``ring_abort``, ``sendskb_plain``, ``recvmsg``, ``poll``); the kernel's other steps
  (the TX walk: claim or copy, validate, act, release) as the model's own spec steps on its
  frames. A payload (the spec's integer ``data``) is the model's bytes for that integer, as the
  model stores integers into a payload area (8 bytes, little endian, zero-padded).
* **queue-service traces**: a real :class:`~nlmmap.model.queue.QueueService` over a model socket
  (frames as bytes, packet messages built and parsed, verdicts applied to the queue list); the
  outcome is also read as the packets that got a verdict although the reader never saw them.

A trace whose user writes frames that are not mapped (a spec without the mapping precondition
allows it, no real user can) is replayed with the rings mapped first; the replay says so in its
notes and counts the extra mapping when it compares ``mapped``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nlmmap.spec.abi import (
    DEFAULT_PAGE_SIZE,
    NETLINK_NO_ENOBUFS,
    NETLINK_RX_RING,
    NETLINK_TX_RING,
    NL_MMAP_HDRLEN,
    NL_MMAP_MSG_ALIGNMENT,
    FrameHeader,
    RingRequest,
    Status,
    check_ring_geometry,
)
from nlmmap.spec.catalog import system_from_meta
from nlmmap.spec.errors import NetlinkError
from nlmmap.spec.itf import ACTION_KEY, PICKS_KEY, decode_value
from nlmmap.spec.protocol import Variant
from nlmmap.spec.system import System

from .core import ModelInvariantError, Msg
from .queue import QueueService
from .socket import Kernel, ModelConfig, ModelSocket

__all__ = ["ModelReplay", "replay_on_model", "geometry_for", "payload_bytes"]

_U32 = struct.Struct("=I")

#: Spec actions that are one user write of a frame, by the field written: the model decides which
#: of them a write is (a well-behaved user's, or the adversary's), with the same effect on bytes.
_SAME_WRITE = ({"fill_tx_frame", "write_tx"}, {"release_frame", "skip_frame", "write_status"})


@dataclass
class ModelReplay:
    """What the model did with the trace."""

    expected: str | None
    steps: int
    violations: list[tuple[str, str]] = field(default_factory=list)
    unseen_decided: list[int] = field(default_factory=list)
    mismatches: list[tuple[int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)
    #: the model socket the trace ran on (its frames' bytes can be read after the replay)
    socket: Any = field(default=None, compare=False, repr=False)

    @property
    def reproduced(self) -> bool:
        """The model shows the trace's violation, took each step as the trace did, and its state
        matched the trace's at every step."""
        return any(n == self.expected for n, _ in self.violations) and not self.mismatches and not self.problems

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for ``--json``."""
        return {"tool": "nlmmap replay", "on": "model", "expected": self.expected, "reproduced": self.reproduced,
                "steps": self.steps, "violations": [{"property": n, "action": a} for n, a in self.violations],
                "unseen_decided": self.unseen_decided, "notes": list(self.notes),
                "problems": [{"step": i, "problem": p} for i, p in self.problems],
                "mismatches": [{"step": i, "variable": v} for i, v in self.mismatches]}


def _initial_values(system: Any) -> dict[str, Any]:
    """The integer values the system's ``init`` fixes with a conjunct ``x = c``."""
    from nlmmap.spec.expr import Const, Op, Var

    def conjuncts(e: Any) -> list[Any]:
        return [c for a in e.args for c in conjuncts(a)] if isinstance(e, Op) and e.op == "and" else [e]

    return {c.args[0].name: c.args[1].value for c in conjuncts(system.init)
            if isinstance(c, Op) and c.op == "==" and isinstance(c.args[0], Var) and isinstance(c.args[1], Const)}


def replay_on_model(doc: Mapping[str, Any]) -> ModelReplay:
    """Run a socket or queue-service trace on the model (``EOPNOTSUPP`` for other systems, or for
    an action the replay has no byte-level counterpart for; ``EINVAL`` for a trace the model cannot
    start: a CTI rather than a trace from the initial state, or a ring with no kernel geometry)."""
    meta = doc.get("#meta", {})
    system = system_from_meta(meta)
    if system.name == "queue":
        return _replay_queue(doc, system)
    if system.name == "socket":
        return _SocketReplay(doc, system).run()
    raise NetlinkError("EOPNOTSUPP", f"traces of system {system.name!r} do not replay on the byte-level model; "
                                     "use --on spec")


# --- the socket ------------------------------------------------------------------------------------
def geometry_for(frames: int, capacity: int, *, page_size: int = DEFAULT_PAGE_SIZE) -> RingRequest:
    """A kernel ring geometry of ``frames`` frames holding ``capacity`` payload bytes each: frame size
    ``capacity + NL_MMAP_HDRLEN``, the smallest block (whole pages) whose frames per block divide
    ``frames``. ``EINVAL`` naming the rule when there is none."""
    frame_size = capacity + NL_MMAP_HDRLEN
    if frames < 1 or capacity < 0 or frame_size % NL_MMAP_MSG_ALIGNMENT:
        raise NetlinkError("EINVAL", f"a ring of {frames} frames with capacity {capacity} has no kernel geometry "
                                     f"(frame size {frame_size} must be a multiple of {NL_MMAP_MSG_ALIGNMENT})")
    for pages in range(1, 1 + max(1, (frame_size * frames) // page_size + 1)):
        block = pages * page_size
        fpb = block // frame_size
        if fpb >= 1 and frames % fpb == 0:
            return check_ring_geometry(RingRequest(block, frames // fpb, frame_size, frames), page_size=page_size)
    raise NetlinkError("EINVAL", f"a ring of {frames} frames of {frame_size} bytes has no kernel geometry (the "
                                 "frames per block of every block size divide no such ring)")


def payload_bytes(value: Any, capacity: int) -> bytes:
    """The payload area holding the spec's integer ``value`` (as the model stores an integer into
    a payload: 8 bytes, little endian, then zeros), or the bytes themselves."""
    raw = value if isinstance(value, (bytes, bytearray)) else int(value).to_bytes(8, "little", signed=True)
    return bytes(raw[:capacity]).ljust(capacity, b"\0")


class _SocketReplay:
    """One socket trace on a model socket (see the module docstring)."""

    def __init__(self, doc: Mapping[str, Any], system: System):
        self.doc, self.system = doc, system
        meta = doc.get("#meta", {})
        self.states = [decode_value(s) for s in doc["states"]]
        first = self.states[0]
        if any(first.get(n, 0) for n in ("rx_frame_nr", "tx_frame_nr", "mapped")):
            raise NetlinkError("EINVAL", "the trace does not start from a fresh socket (is it a CTI, not a BMC trace?)")
        variant = Variant.from_mapping(system.variant)
        self.sock: ModelSocket = Kernel(ModelConfig(variant=variant)).socket()
        self.out = ModelReplay(meta.get("invariant"), len(self.states) - 1, socket=self.sock)
        self.extra_maps = 0  # mappings the replay made that the trace does not have
        self.mapped_now = 0  # steps the replay took for this trace step before it (its own mmap)
        self.sizes: dict[int, int] = {}  # RX frame -> size of the message allocated in it

    def run(self) -> ModelReplay:
        handlers: dict[str, Callable[[Mapping[str, Any], int], None]] = {
            "set_rx_ring": lambda p, i: self._ring("rx", p), "set_tx_ring": lambda p, i: self._ring("tx", p),
            "teardown_rx_ring": lambda p, i: self._teardown("rx"),
            "teardown_tx_ring": lambda p, i: self._teardown("tx"),
            "mmap": lambda p, i: self.sock.mmap(self.sock.layout.size),
            "munmap": lambda p, i: self.sock.munmap(),
            "set_no_enobufs": lambda p, i: self.sock.setsockopt(NETLINK_NO_ENOBUFS, _U32.pack(int(bool(p["on"])))),
            "fill_tx_frame": lambda p, i: self._write_tx(i, p["j"], int(Status.VALID), p["len"], p["data"]),
            "write_tx": lambda p, i: self._write_tx(i, p["j"], p["v"], p["len"], p["data"]),
            "release_frame": lambda p, i: self._write_rx(i, p["j"], int(Status.UNUSED)),
            "skip_frame": lambda p, i: self._write_rx(i, p["j"], int(Status.SKIP)),
            "write_status": lambda p, i: self._write_rx(i, p["j"], p["v"]),
            "alloc": self._alloc, "alloc_full": self._alloc, "alloc_all_skip": self._alloc,
            "publish": lambda p, i: self.sock.ring_publish(p["j"], bytes(self.sizes.get(p["j"], 0))),
            "abort": lambda p, i: self.sock.ring_abort(p["j"]),
            "copy_claim": self._sendskb, "copy_full": self._sendskb, "queue_plain": self._sendskb,
            "copy_congested_kernel": lambda p, i: self._plain(True),
            "copy_refused": lambda p, i: self._plain(False),
            "recvmsg": self._recvmsg, "recvmsg_error": self._recvmsg, "recvmsg_empty": self._recvmsg,
            "poll": lambda p, i: self.sock.poll(),
        }
        for i, raw in enumerate(self.doc["states"][1:], start=1):
            name, picks = raw[ACTION_KEY], decode_value(raw.get(PICKS_KEY, {}))
            action = self.system.action(name)
            before = len(self.sock.trace)
            if name not in handlers and not (action.actor == "kernel" and "rq_len" not in action.modifies):
                raise NetlinkError("EOPNOTSUPP", f"step {i}: {name} has no byte-level counterpart in the replay; "
                                                 "use --on spec")
            try:
                if name in handlers:
                    handlers[name](picks, i)
                else:
                    self.sock.step(name, **picks)  # a kernel step on the frames (the TX walk)
            except ModelInvariantError as e:
                self.out.problems.append((i, f"the model refuses {name}: {e}"))
                break
            except NetlinkError as e:
                if e.errno != action.errno:  # a call failing with its action's errno is the step itself
                    self.out.problems.append((i, f"{name} failed on the model with {e.errno}: {e.message}"))
                    break
            taken = [s.action for s in self.sock.trace[before + self.mapped_now:]]
            self.mapped_now = 0
            if not self._same(name, taken):
                self.out.problems.append((i, f"the model took {taken} for {name}"))
            self._compare(i)
        self.out.violations = [(n, a) for n, a, _ in self.sock.violations]
        return self.out

    @staticmethod
    def _same(name: str, taken: list[str]) -> bool:
        if taken == [name]:
            return True
        return len(taken) == 1 and any(name in g and taken[0] in g for g in _SAME_WRITE)

    def _ring(self, ring: str, p: Mapping[str, Any]) -> None:
        req = geometry_for(int(p["n"]), int(p["cap"]), page_size=self.sock.config.page_size)
        self.sock.setsockopt(NETLINK_RX_RING if ring == "rx" else NETLINK_TX_RING, req.pack())

    def _teardown(self, ring: str) -> None:
        self.sock.setsockopt(NETLINK_RX_RING if ring == "rx" else NETLINK_TX_RING, RingRequest(0, 0, 0, 0).pack())

    def _mapped(self, i: int) -> None:
        if self.sock.view["mapped"] == 0:
            self.sock.mmap(self.sock.layout.size)
            self.extra_maps += 1
            self.mapped_now = 1
            self.out.notes.append(f"step {i}: the trace writes a frame that is not mapped; the replay mapped the "
                                  "rings first (mapped counts one more from here)")

    def _write_tx(self, i: int, j: int, status: int, length: int, data: Any) -> None:
        self._mapped(i)
        ring = self.sock.tx
        head = FrameHeader(status & 0xFFFFFFFF, length & 0xFFFFFFFF).pack()
        self.sock.poke(self.sock.layout.tx_base + ring.off(j),
                       head + payload_bytes(data, ring.geom.payload_capacity))

    def _write_rx(self, i: int, j: int, status: int) -> None:
        self._mapped(i)
        self.sock.poke(self.sock.layout.rx_base + self.sock.rx.off(j), _U32.pack(status & 0xFFFFFFFF))

    def _alloc(self, p: Mapping[str, Any], i: int) -> None:
        j = self.sock.ring_alloc(int(p["size"]))
        if j is not None:
            self.sizes[j] = int(p["size"])

    def _sendskb(self, p: Mapping[str, Any], i: int) -> None:
        self.sock.sendskb_plain(Msg(b"\0" * 16))

    def _plain(self, from_kernel: bool) -> None:
        self.sock.plain_deliver(Msg(b"\0" * 16), from_kernel=from_kernel)

    def _recvmsg(self, p: Mapping[str, Any], i: int) -> None:
        self.sock.recvmsg(1 << 16)

    def _compare(self, i: int) -> None:
        """Record every variable of the trace's state ``i`` that the model's spec view disagrees with."""
        want = self.states[i]
        view = self.sock.view
        cap = self.sock.tx.geom.payload_capacity if self.sock.tx is not None else 0
        for v in self.system.state:
            if v.name not in want:
                continue
            rec, got = want[v.name], view[v.name]
            if v.name == "mapped":
                rec = rec + self.extra_maps
            if isinstance(rec, dict):
                n = int(view[v.index]) if v.index is not None else 0
                if any(not _equal(got[k], rec.get(k, 0), cap) for k in range(n)):
                    self.out.mismatches.append((i, v.name))
            elif not _equal(got, rec, cap):
                self.out.mismatches.append((i, v.name))


def _equal(model: Any, trace: Any, capacity: int) -> bool:
    """A model value equals a trace value (payload bytes compare with the trace's integer)."""
    if isinstance(model, (bytes, bytearray)):
        return bytes(model) == payload_bytes(trace, len(model) or capacity)
    return model == trace


# --- the queue service -------------------------------------------------------------------------------
def _replay_queue(doc: Mapping[str, Any], system: System) -> ModelReplay:
    meta = doc.get("#meta", {})
    states = [decode_value(s) for s in doc["states"]]
    first = states[0]
    n = int(first["rx_frame_nr"])
    counters = [v.name for v in system.state if v.sort == "int" and v.name != "rx_frame_nr"]
    start = _initial_values(system)  # what init fixes (q_head = 1, the id space, ...); other counters 0
    if n < 1 or any(first.get(c, 0) != start.get(c, 0) for c in counters) or \
            any(first["rx_status"][k] for k in range(n)):
        raise NetlinkError("EINVAL", "the trace does not start from an empty ring (is it a CTI, not a BMC trace?)")
    variant = Variant(queue_alloc_outside_lock=bool(system.variant.get("queue_alloc_outside_lock", True)))
    s = Kernel(ModelConfig(variant=variant)).socket()
    s.setsockopt(NETLINK_RX_RING, RingRequest(4096, n, 4096, n).pack())  # one frame per block
    s.mmap(4096 * n)
    q = QueueService(s)
    out = ModelReplay(meta.get("invariant"), len(states) - 1, socket=s)
    for i, raw in enumerate(doc["states"][1:], start=1):
        action, picks = raw[ACTION_KEY], decode_value(raw.get(PICKS_KEY, {}))
        if action == "queue_alloc":
            q.alloc(picks["c"], f"packet from cpu {picks['c']}".encode())
        elif action == "queue_send":
            q.send(picks["c"])
        elif action == "queue_enqueue":
            q.enqueue(picks["c"], f"packet from cpu {picks['c']}".encode())
        elif action == "read_frame":
            q.read_next()
        elif action in ("verdict_batch", "verdict_batch_wrap"):
            q.verdict_batch(picks["m"])
        else:
            raise NetlinkError("EINVAL", f"step {i}: unknown queue action {action!r}")
        want = states[i]["rx_status"]
        if [s.statuses("rx")[k] for k in range(n)] != [want[k] for k in range(n)]:
            out.mismatches.append((i, "rx_status"))
    out.violations = list(q.violations)
    out.unseen_decided = q.unseen_decided
    return out
