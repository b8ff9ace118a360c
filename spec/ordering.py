"""The status-word handoff under weak memory: ``nlmmap prove --ordering``.

Every frame's ``nm_status`` hands the frame from one side to the other (kernel-protocol.md 5, 6.6).
Each handoff is a litmus program of the two sides (:mod:`nlmmap.spec.litmus`), compiled for a target
(x86-64 under x86-TSO; AArch64 under ARMv8, with C11 acquire loads as ``LDAR`` or, ``aarch64-rcpc``,
as ``LDAPR``) and checked in z3 (:mod:`nlmmap.spec.memory_model`): the forbidden outcome is either
no consistent execution (**proved**) or one is found (a **counterexample**, printed as an execution
graph, :mod:`nlmmap.spec.execgraph`). The programs, named after what happens:

* ``rx_publish`` (6.2): the kernel writes the payload and ``nm_len``, then ``VALID``; the user reads
  ``nm_status``, then ``nm_len`` and the payload. Forbidden: VALID seen, stale ``nm_len`` or payload
  (message passing, MP).
* ``tx_handover`` (11.2): the user writes the payload, ``nm_len``, then ``VALID``; the kernel reads the
  status, ``nm_len`` once, the payload. Forbidden: VALID seen, stale length or bytes (MP).
* ``rx_reuse`` / ``tx_reuse`` (5, 11.2): the consumer reads the data, then stores ``UNUSED``; the
  producer sees ``UNUSED`` and writes the next message into the frame. Forbidden: the consumer's
  read returns the *next* message (load buffering, LB: earlier loads must be complete before the
  status store, the reason a18e6a186f53 put a full barrier first).
* ``rx_wakeup`` / ``rx_space_wakeup``: the implementation's sleep/wake handshake (``impl/reader.py``
  ``_sleep_until``, ``_give_back``; ``impl/rings.py`` ``wake_user``, ``wait_space``): the sleeper stores
  its wait flag then re-checks the frame; the waker stores the status then loads the flag. Forbidden:
  both miss (the sleeper sleeps, nobody kicks: a lost wake-up; store buffering, SB).

Three properties, named after what they protect (:data:`PROPERTIES`): ``ConsumerSeesPublishedData``
(the two handovers), ``ReleaseCompletesReads`` (reuse), ``NoLostWakeup`` (the handshakes). One line
per check, e.g. ``[ordering] ConsumerSeesPublishedData: rx_publish/kernel-3.10+user-acquire on
aarch64 ... counterexample, as expected (N ms)``.

Each configuration (:data:`CONFIGURATIONS`) is one choice of operations for each side: the kernel's
(Linux 4.4's ``netlink_set_status`` = ``smp_mb(); store``; 3.10's ``store; smp_wmb()``;
``netlink_get_status`` = ``smp_rmb(); load``), the implementation's (``atomicshm`` C11 acquire loads,
release and seq_cst stores; the pure-Python ``tso`` backend) and ones with a barrier removed. What
each must give, proved or a counterexample, is data: ``ordering_expected.json``; a result differing
from it is FAILED. The calibration tests (MP, SB, LB, ... with known results) run first, so a wrong
axiom shows up as a FAILED calibration line before any protocol result is trusted.

The implementation's atomics (``impl/atomics.py``) map onto these operations as: ``load_acquire`` /
``load32(.., ACQUIRE)`` = C11 acquire load (``MOV``; ``LDAR`` or ``LDAPR``); ``store_release`` /
``store32(.., RELEASE)`` = C11 release store (``MOV``; ``STLR``); ``store_sc`` / ``store32(.., SEQ_CST)``
= C11 seq_cst store (``XCHG``; ``STLR``); ``load_sc`` / ``load32(.., SEQ_CST)`` = C11 seq_cst load
(``MOV``; ``LDAR``); the ``tso`` backend = plain accesses with a lock round trip after a seq_cst store
and before a seq_cst load (:data:`ATOMICS_MAPPING`). Each implementation side cites the code it
stands for (:mod:`nlmmap.spec.ordering_cites`); the tests check the cites against the code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import cache
from importlib.resources import files
from typing import Any

import z3

from .abi import Status
from .execgraph import execution_dot, format_execution
from .litmus import CALIBRATION, TARGETS, Op, SourceProgram, branch, compile_program, fence, load, store
from .memory_model import MODELS, Execution, check
from .ordering_cites import ATOMICS_MAPPING, CITES, Cite
from .prove import DEFAULT_SEED, DEFAULT_TIMEOUT_MS, Verdict

__all__ = ["Side", "Configuration", "CONFIGURATIONS", "ATOMICS_MAPPING", "OrderingResult", "OrderingReport",
           "prove_ordering", "calibrate", "expected_results", "configuration", "HEADLINE_COUNTEREXAMPLES", "PROPERTIES"]

UNUSED, RESERVED, VALID = int(Status.UNUSED), int(Status.RESERVED), int(Status.VALID)
OLD, NEW = 0, 1  # payload before / after the handover
MSG1, MSG2 = 1, 2  # the message in the frame, and the next one written after its release
LEN = 20  # nm_len of the new message (any non-zero length)

_STATUS_NAMES = {int(s): s.name for s in Status}
VALUES: dict[str, dict[int, str]] = {
    "nm_status": _STATUS_NAMES, "next_status": _STATUS_NAMES,
    "payload": {OLD: "old", NEW: "new", MSG2: "msg2"}, "nm_len": {0: "0", LEN: str(LEN)},
}
_REUSE_VALUES = {**VALUES, "payload": {MSG1: "msg1", MSG2: "msg2"}}

#: the two counterexamples the bar asks for: a barrier removed on either side of the RX handoff.
HEADLINE_COUNTEREXAMPLES = (("rx_publish/kernel-3.10+user-acquire", "aarch64"),
                            ("rx_publish/kernel-4.4+user-plain", "aarch64"))


@dataclass(frozen=True)
class Side:
    """One side's operations in a program: ``who`` (thread name), ``name`` (configuration part),
    ``where`` (the code it stands for)."""

    who: str
    name: str
    ops: tuple[Op, ...]
    where: str
    cites: tuple[Cite, ...] = ()  # (function, exact code) the ops stand for (ordering_cites); the tests check them


@dataclass(frozen=True)
class Configuration:
    """One obligation row: a program with both sides chosen, checked on each of ``targets``."""

    program: str
    sides: tuple[Side, Side]
    targets: tuple[str, ...]
    property: str
    exists: tuple[tuple[tuple[str, int], ...], ...]
    init: tuple[tuple[str, int], ...]
    values: dict[str, dict[int, str]] = field(default_factory=lambda: dict(VALUES))

    @property
    def id(self) -> str:
        return f"{self.program}/{self.sides[0].name}+{self.sides[1].name}"

    def source(self) -> SourceProgram:
        return SourceProgram(self.id, (self.sides[0].ops, self.sides[1].ops), self.exists, self.init,
                             (self.sides[0].who, self.sides[1].who), self.values, PROPERTIES[self.property])


# --- the sides ------------------------------------------------------------------------------------
#: The stream producer's copy of a run (``SeqWriter.frame_run``) spans the claimed frames, so it
#: writes their status words too, plainly, with the UNUSED the producer saw in them.
_RUN_COPY = store("nm_status", UNUSED, note="frame_run: the run's copy")


def _rx_producer(name: str) -> Side:
    """The kernel filling an RX frame it RESERVED: payload, header (nm_len), then VALID."""
    data = (store("payload", NEW, note="skb data built in the frame"), store("nm_len", LEN, note="hdr->nm_len"))
    if name == "kernel-4.4":
        return Side("kernel", name, (*data, fence("smp_mb"), store("nm_status", VALID)),
                    "netlink_queue_mmaped_skb -> netlink_set_status, from a18e6a186f53: smp_mb(); store")
    if name == "kernel-3.10":
        return Side("kernel", name, (*data, store("nm_status", VALID), fence("smp_wmb")),
                    "netlink_set_status 3.10 .. 3.18.3: store; smp_wmb()")
    if name == "impl":
        return Side("kernel", name, (*data, store("nm_status", VALID, "seq_cst", note="publish: store_status")),
                    "the kernel side's publish (and COPY path): payload, header, then store_status = store_sc")
    if name == "impl-run":
        return Side("kernel", name, (_RUN_COPY, *data, store("nm_status", VALID, "release", note="stream_run")),
                    "the stream producer's run: frames written (the copy rewrites the status word with the "
                    "UNUSED it was seen holding), then store32(.., RELEASE) for all but the last")
    if name == "impl-tso":
        return Side("kernel", name, (*data, store("nm_status", VALID, "seq_cst", api="tso")),
                    "publish on the tso backend: plain store, then the lock round trip")
    if name == "impl-tso-run":
        return Side("kernel", name, (_RUN_COPY, *data, store("nm_status", VALID, "release", api="tso")),
                    "the stream producer's run on the tso backend: store32(.., RELEASE), a plain store")
    raise KeyError(name)


def _rx_consumer(name: str) -> Side:
    """The user reading an RX frame: status, then nm_len and payload."""
    rest = (branch("r_status"), load("nm_len", "r_len"), load("payload", "r_data"))
    if name == "user-acquire":
        return Side("user", name, (load("nm_status", "r_status", "acquire"), *rest),
                    "kernel-protocol.md 6.6: the user reads nm_status with acquire semantics; the client's "
                    "status() / header() / the reader's runs: load_acquire / load32(.., ACQUIRE)")
    if name == "user-plain":
        return Side("user", name, (load("nm_status", "r_status"), *rest),
                    "a user that tests nm_status with a plain load (the read barrier removed)")
    if name == "impl-tso":
        return Side("user", name, (load("nm_status", "r_status", "acquire", api="tso"), *rest),
                    "the client on the tso backend: load_acquire = plain load")
    if name == "impl-run":
        return Side("user", name, (load("nm_status", "r_status", note="the run's strided read"),
                                   fence("acquire", api="c11", note="at.fence(at.ACQUIRE)"), *rest),
                    "the reader's full runs: the status words in one strided plain read, then ONE "
                    "acquire fence (atomicshm.fence), then the headers and payloads")
    raise KeyError(name)


def _tx_producer(name: str) -> Side:
    """The user filling a TX frame: payload, nm_len, then VALID."""
    data = (store("payload", NEW, note="write_frame: mm[...] = data"),
            store("nm_len", LEN, note="_LEN.pack_into"))
    if name == "user-release":
        return Side("user", name, (*data, store("nm_status", VALID, "release")),
                    "kernel-protocol.md 6.6: the user stores nm_status with release semantics")
    if name == "user-plain":
        return Side("user", name, (*data, store("nm_status", VALID)), "a user that stores VALID plainly")
    if name == "impl":
        return Side("user", name, (*data, store("nm_status", VALID, "seq_cst")),
                    "the client's write_frame: data, nm_len, then store_sc(off, VALID)")
    if name == "impl-tso":
        return Side("user", name, (*data, store("nm_status", VALID, "seq_cst", api="tso")),
                    "write_frame on the tso backend")
    raise KeyError(name)


def _tx_consumer(name: str) -> Side:
    """The kernel walking the TX ring: status, nm_len once, payload (copied)."""
    rest = (branch("r_status"), load("nm_len", "r_len", "READ_ONCE", api="linux"), load("payload", "r_data"))
    plain_rest = (branch("r_status"), load("nm_len", "r_len"), load("payload", "r_data"))
    if name == "kernel-4.4":
        return Side("kernel", name, (fence("smp_rmb"), load("nm_status", "r_status"), *rest),
                    "netlink_mmap_sendmsg -> netlink_current_frame -> netlink_get_status: smp_rmb(); load; "
                    "then ACCESS_ONCE(nm_len) and the memcpy")
    if name == "kernel-rmb-after":
        return Side("kernel", name, (load("nm_status", "r_status"), fence("smp_rmb"), *rest),
                    "the read barrier placed after the status load (load; smp_rmb())")
    if name == "impl":
        return Side("kernel", name, (load("nm_status", "r_status", "acquire"), *plain_rest),
                    "the TX walk: load_status (load_acquire), then nm_len once and the private copy")
    if name == "impl-tso":
        return Side("kernel", name, (load("nm_status", "r_status", "acquire", api="tso"), *plain_rest),
                    "the TX walk on the tso backend")
    raise KeyError(name)


def _reuse_consumer(direction: str, name: str) -> Side:
    """The frame's consumer: reads the data (message 1), then hands the frame back (UNUSED)."""
    rd = load("payload", "r_data")
    who = "user" if direction == "rx" else "kernel"
    table: dict[str, tuple[tuple[Op, ...], str]] = {
        "impl": ((rd, store("nm_status", UNUSED, "seq_cst")),
                 "the client's release: _give_back of one frame, store32(.., SEQ_CST)" if direction == "rx" else
                 "the TX walk: the private copy, then tx_release: store_status(UNUSED) = store_sc"),
        "impl-run": ((rd, store("nm_status", UNUSED, "release")),
                     "the reader's _give_back after a run: store32(.., RELEASE) for all but the last frame"),
        "user-release": ((rd, store("nm_status", UNUSED, "release")),
                         "kernel-protocol.md 6.6: the user releases with a release store"),
        "user-plain": ((rd, store("nm_status", UNUSED)), "a user that releases with a plain store"),
        "kernel-4.4": ((rd, fence("smp_mb"), store("nm_status", UNUSED)),
                       "netlink_mmap_sendmsg: memcpy, then netlink_set_status: smp_mb(); store"),
        "kernel-3.10": ((rd, store("nm_status", UNUSED), fence("smp_wmb")),
                        "netlink_mmap_sendmsg before a18e6a186f53: memcpy, store, smp_wmb()"),
        "impl-tso": ((rd, store("nm_status", UNUSED, "seq_cst", api="tso")), "the tso backend's store_sc"),
    }
    ops, where = table[name]
    return Side(who, name, ops, where)


def _reuse_producer(direction: str, name: str) -> Side:
    """The frame's next producer: sees UNUSED, then writes message 2 into the frame."""
    who = "kernel" if direction == "rx" else "user"
    nxt = store("payload", MSG2)
    table: dict[str, tuple[tuple[Op, ...], str]] = {
        "kernel-4.4": ((fence("smp_rmb"), load("nm_status", "r_status"), branch("r_status"), fence("smp_mb"),
                        store("nm_status", RESERVED), nxt),
                       "__netlink_alloc_skb: netlink_get_status (smp_rmb; load) != UNUSED -> fail; "
                       "netlink_set_status(RESERVED) (smp_mb; store); the skb data written later"),
        "impl-alloc": ((load("nm_status", "r_status", "acquire"), branch("r_status"),
                        store("nm_status", RESERVED, "seq_cst"), nxt),
                       "the kernel side's alloc: status() (load_acquire) != UNUSED -> full; store_status(RESERVED) "
                       "(store_sc); publish writes the payload"),
        "impl-stream": ((load("nm_status", "r_status", "acquire"), branch("r_status"), _RUN_COPY, nxt),
                        "the stream producer's run: load32(.., ACQUIRE) of the frames ahead, then frame_run(), "
                        "whose copy rewrites the status word with the UNUSED it was seen holding"),
        "impl-send": ((load("nm_status", "r_status", "acquire"), branch("r_status"), nxt),
                      "the client's send: load_acquire(off) != UNUSED -> kick; write_frame"),
        "user-ctrl": ((load("nm_status", "r_status"), branch("r_status"), nxt),
                      "a user that tests UNUSED with a plain load and then writes (a control dependency)"),
        "impl-tso-alloc": ((load("nm_status", "r_status", "acquire", api="tso"), branch("r_status"),
                            store("nm_status", RESERVED, "seq_cst", api="tso"), nxt), "alloc on the tso backend"),
        "impl-tso-send": ((load("nm_status", "r_status", "acquire", api="tso"), branch("r_status"), nxt),
                          "send on the tso backend"),
    }
    ops, where = table[name]
    return Side(who, name, ops, where)


def _sleeper(flag: str, status_loc: str, name: str, who: str) -> Side:
    """Sets its wait flag, then re-checks the frame (``_sleep_until`` / ``wait_space``)."""
    if name == "impl":
        ops = (store(flag, 1, "seq_cst"), load(status_loc, "r_status", "seq_cst"))
        where = ("the reader's _sleep_until: ctl.store_sc(CTL_RX_WAIT, 1); recheck(): load32(off, SEQ_CST)"
                 if who == "user" else
                 "the kernel side's wait_space: ctl.store_sc(CTL_K_WAIT, 1); has_space(recheck=True): load_sc")
    elif name == "acquire-recheck":
        ops = (store(flag, 1, "seq_cst"), load(status_loc, "r_status", "acquire"))
        where = "the re-check as an acquire load after the seq_cst flag store (what the implementation did before)"
    elif name == "release-acquire":
        ops = (store(flag, 1, "release"), load(status_loc, "r_status", "acquire"))
        where = "flag with a release store, re-check with an acquire load (no seq_cst)"
    elif name == "impl-tso":
        ops = (store(flag, 1, "seq_cst", api="tso"), load(status_loc, "r_status", "seq_cst", api="tso"))
        where = "the tso backend: store and lock round trip, then lock round trip and load"
    else:
        raise KeyError(name)
    return Side(who, name, ops, where)


def _waker(flag: str, status_loc: str, value: int, name: str, who: str) -> Side:
    """Stores the status (the run's last one seq_cst), then loads the other side's wait flag once."""
    chk = load(flag, "r_flag", "seq_cst")
    if name == "impl":
        ops: tuple[Op, ...] = (store(status_loc, value, "seq_cst"), chk)
        where = ("the kernel side's publish + wake_user: store_sc(o, VALID); ctl.load_sc(CTL_RX_WAIT)"
                 if who == "kernel" else
                 "the client's release / _give_back: store UNUSED seq_cst; load32(CTL_K_WAIT, SEQ_CST)")
    elif name == "impl-run":
        ops = (store(status_loc, value, "release"), store("next_status", value, "seq_cst"), chk)
        where = ("the stream producer's run: release stores, the last seq_cst, then wake_user's load_sc"
                 if who == "kernel" else
                 "the reader's _give_back: release stores, the last seq_cst, then load32(CTL_K_WAIT, SEQ_CST)")
    elif name == "release-acquire":
        ops = (store(status_loc, value, "release"), load(flag, "r_flag", "acquire"))
        where = "status with a release store, flag with an acquire load (no seq_cst)"
    elif name == "impl-tso":
        ops = (store(status_loc, value, "seq_cst", api="tso"), load(flag, "r_flag", "seq_cst", api="tso"))
        where = "the tso backend: store, lock round trip; lock round trip, load"
    else:
        raise KeyError(name)
    return Side(who, name, ops, where)


def _cite(role: str, side: Side) -> Side:
    return replace(side, cites=CITES.get((role, side.name), ()))


# --- the configurations ---------------------------------------------------------------------------
_ALL = ("x86-64", "aarch64", "aarch64-rcpc")
_HW = ("x86-64", "aarch64")
_X86 = ("x86-64",)

#: The properties, named after what they protect, and what each says.
PROPERTIES: dict[str, str] = {
    "ConsumerSeesPublishedData": "a consumer that sees VALID reads the header and payload the producer wrote",
    "ReleaseCompletesReads": "the consumer's reads of a frame it released never return the next message",
    "NoLostWakeup": "a sleeper that misses the frame is always kicked",
}
_SEES_DATA, _REUSE, _WAKE = "ConsumerSeesPublishedData", "ReleaseCompletesReads", "NoLostWakeup"
_STALE = ((("r_status", VALID), ("r_len", 0)), (("r_status", VALID), ("r_data", OLD)))


def _rx(p: str, c: str, targets: tuple[str, ...]) -> Configuration:
    return Configuration("rx_publish", (_cite("rx_producer", _rx_producer(p)), _cite("rx_consumer", _rx_consumer(c))),
                         targets, _SEES_DATA, _STALE,
                         (("nm_status", RESERVED),))


def _tx(p: str, c: str, targets: tuple[str, ...]) -> Configuration:
    return Configuration("tx_handover", (_cite("tx_producer", _tx_producer(p)), _cite("tx_consumer", _tx_consumer(c))),
                         targets, _SEES_DATA, _STALE,
                         (("nm_status", UNUSED),))


def _reuse(direction: str, c: str, p: str, targets: tuple[str, ...]) -> Configuration:
    sides = (_cite(f"{direction}_reuse_consumer", _reuse_consumer(direction, c)),
             _cite(f"{direction}_reuse_producer", _reuse_producer(direction, p)))
    return Configuration(f"{direction}_reuse", sides,
                         targets, _REUSE, ((("r_data", MSG2), ("r_status", UNUSED)),),
                         (("nm_status", VALID), ("payload", MSG1)), dict(_REUSE_VALUES))


def _wake(program: str, s: str, w: str, targets: tuple[str, ...]) -> Configuration:
    if program == "rx_wakeup":  # the user waits for VALID; the kernel publishes
        sides = (_sleeper("rx_wait", "nm_status", s, "user"), _waker("rx_wait", "nm_status", VALID, w, "kernel"))
        before = RESERVED
        exists = (("r_status", RESERVED), ("r_flag", 0))
    else:  # the kernel waits for UNUSED; the user releases
        sides = (_sleeper("k_wait", "nm_status", s, "kernel"), _waker("k_wait", "nm_status", UNUSED, w, "user"))
        before = VALID
        exists = (("r_status", VALID), ("r_flag", 0))
    init = (("nm_status", before),) + ((("next_status", before),) if w == "impl-run" else ())
    sides = (_cite(f"{program}_sleeper", sides[0]), _cite(f"{program}_waker", sides[1]))
    return Configuration(program, sides, targets, _WAKE, (exists,), init,
                         {**VALUES, "rx_wait": {0: "0", 1: "1"}, "k_wait": {0: "0", 1: "1"}})


CONFIGURATIONS: tuple[Configuration, ...] = (
    _rx("kernel-4.4", "user-acquire", _ALL),
    _rx("kernel-3.10", "user-acquire", _HW),
    _rx("kernel-4.4", "user-plain", _HW),
    _rx("impl", "user-acquire", _ALL),
    _rx("impl-run", "user-acquire", _ALL),
    _rx("impl-run", "impl-run", _ALL),
    _rx("kernel-4.4", "impl-run", _HW),
    _rx("impl-tso", "impl-tso", _X86),
    _rx("impl-tso-run", "impl-tso", _X86),
    _tx("user-release", "kernel-4.4", _HW),
    _tx("user-release", "kernel-rmb-after", _HW),
    _tx("user-plain", "kernel-rmb-after", _HW),
    _tx("impl", "impl", _ALL),
    _tx("impl-tso", "impl-tso", _X86),
    _reuse("rx", "impl", "impl-alloc", _ALL),
    _reuse("rx", "impl-run", "impl-stream", _ALL),
    _reuse("rx", "user-release", "kernel-4.4", _HW),
    _reuse("rx", "user-plain", "kernel-4.4", _HW),
    _reuse("rx", "impl-tso", "impl-tso-alloc", _X86),
    _reuse("tx", "kernel-4.4", "impl-send", _ALL),
    _reuse("tx", "kernel-3.10", "impl-send", _HW),
    _reuse("tx", "kernel-4.4", "user-ctrl", _HW),
    _reuse("tx", "impl", "impl-send", _ALL),
    _reuse("tx", "impl-tso", "impl-tso-send", _X86),
    _wake("rx_wakeup", "impl", "impl", _ALL),
    _wake("rx_wakeup", "impl", "impl-run", _ALL),
    _wake("rx_wakeup", "acquire-recheck", "impl", _ALL),
    _wake("rx_wakeup", "release-acquire", "release-acquire", _ALL),
    _wake("rx_wakeup", "impl-tso", "impl-tso", _X86),
    _wake("rx_space_wakeup", "impl", "impl", _ALL),
    _wake("rx_space_wakeup", "impl", "impl-run", _ALL),
    _wake("rx_space_wakeup", "acquire-recheck", "impl", _ALL),
    _wake("rx_space_wakeup", "impl-tso", "impl-tso", _X86),
)


def configuration(cid: str) -> Configuration:
    """The configuration with id ``cid`` (``program/producer+consumer``)."""
    for c in CONFIGURATIONS:
        if c.id == cid:
            return c
    raise KeyError(f"no ordering configuration {cid!r}; known: {', '.join(c.id for c in CONFIGURATIONS)}")


@cache
def expected_results() -> dict[str, Any]:
    """The manifest ``nlmmap/spec/ordering_expected.json``: ``calibration`` (litmus test -> model ->
    allowed/forbidden) and ``obligations`` (configuration -> target -> proved/counterexample)."""
    return json.loads(files("nlmmap.spec").joinpath("ordering_expected.json").read_text())


# --- results --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OrderingResult:
    """One check: a calibration litmus test under a model, or a configuration on a target.

    ``outcome`` is what z3 found (``proved``/``counterexample`` for configurations,
    ``forbidden``/``allowed`` for calibration, or ``unknown``); ``verdict`` compares it with the
    manifest: OK when equal, UNKNOWN when z3 could not tell (never a pass), FAILED otherwise."""

    kind: str  # "calibration" or "handoff"
    name: str
    target: str
    model: str
    property: str
    outcome: str
    expected: str
    verdict: Verdict
    ms: float
    reason: str = ""
    execution: Execution | None = None
    condition: str = ""

    def line(self) -> str:
        """E.g. ``[ordering] ConsumerSeesPublishedData: rx_publish/kernel-3.10+user-acquire on aarch64
        ... counterexample, as expected (1.2 ms)``."""
        if self.kind == "calibration":
            head = f"[ordering] calibration {self.name} under {self.model}: {self.expected}"
        else:
            head = f"[ordering] {self.property}: {self.name} on {self.target}"
        if self.verdict is Verdict.UNKNOWN:
            tail = f"unknown ({self.ms:.1f} ms) [{self.reason}]"
        elif self.verdict is Verdict.FAILED:
            tail = f"FAILED ({self.outcome}, expected {self.expected}) ({self.ms:.1f} ms)"
        elif self.kind == "handoff" and self.outcome == "counterexample":
            tail = f"counterexample, as expected ({self.ms:.1f} ms)"
        else:
            tail = f"ok ({self.ms:.1f} ms)"
        return f"{head} ... {tail}"

    def as_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind, "name": self.name, "target": self.target, "model": self.model,
             "property": self.property, "claim": PROPERTIES.get(self.property, ""),
             "outcome": self.outcome, "expected": self.expected, "verdict": self.verdict.text,
             "ms": round(self.ms, 2), "reason": self.reason, "condition": self.condition}
        if self.execution is not None:
            d["counterexample"] = self.execution.as_dict()
            d["dot"] = execution_dot(self.execution)
        return d

    def graph(self) -> str:
        """The counterexample as a text table ('' when there is none)."""
        return format_execution(self.execution) if self.execution is not None else ""


@dataclass
class OrderingReport:
    """Every check of a run, with the solver version and settings."""

    results: list[OrderingResult] = field(default_factory=list)
    z3_version: str = field(default_factory=z3.get_full_version)
    seed: int = DEFAULT_SEED
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    total_ms: float = 0.0

    @property
    def verdict(self) -> Verdict:
        return max((r.verdict for r in self.results), default=Verdict.OK)

    @property
    def exit_code(self) -> int:
        """0 as expected, 1 some result differs from the manifest, 3 inconclusive."""
        return {Verdict.OK: 0, Verdict.FAILED: 1, Verdict.UNKNOWN: 3}[self.verdict]

    def counterexamples(self) -> list[OrderingResult]:
        return [r for r in self.results if r.execution is not None and r.kind == "handoff"]

    @property
    def counts(self) -> dict[str, int]:
        """How many checks have each verdict, by its text."""
        return {v.text: sum(r.verdict is v for r in self.results) for v in Verdict}

    def summary(self) -> str:
        """The closing line, e.g. ``nlmmap prove --ordering: 154 checks (77 calibration, 77 handoff, 14
        counterexamples as expected): 154 ok, 0 FAILED, 0 unknown in 0.61 s -> ok``."""
        c, kinds = self.counts, [r.kind for r in self.results]
        cex = sum(r.verdict is Verdict.OK and r.outcome == "counterexample" for r in self.results)
        return (f"nlmmap prove --ordering: {len(self.results)} checks ({kinds.count('calibration')} calibration, "
                f"{kinds.count('handoff')} handoff, {cex} counterexamples as expected): {c['ok']} ok, "
                f"{c['FAILED']} FAILED, {c['unknown']} unknown in {self.total_ms / 1e3:.2f} s -> {self.verdict.text}")

    def as_dict(self) -> dict[str, Any]:
        return {"tool": "nlmmap prove --ordering", "z3": self.z3_version, "seed": self.seed,
                "timeout_ms": self.timeout_ms, "verdict": self.verdict.text, "counts": self.counts,
                "total_ms": round(self.total_ms, 1), "results": [r.as_dict() for r in self.results]}


def _tag(allowed: bool | None, yes: str, no: str) -> str:
    return "unknown" if allowed is None else (yes if allowed else no)


def _verdict(outcome: str, expected: str) -> Verdict:
    if outcome == "unknown":
        return Verdict.UNKNOWN
    return Verdict.OK if outcome == expected else Verdict.FAILED


def calibrate(*, timeout_ms: int = DEFAULT_TIMEOUT_MS, seed: int = DEFAULT_SEED,
              models: dict[str, Any] | None = None,
              on_result: Callable[[OrderingResult], None] | None = None) -> list[OrderingResult]:
    """Every calibration litmus test under every model the manifest gives a known result for.
    ``models`` replaces models by name (the tests pass deliberately broken ones)."""
    table = {**MODELS, **(models or {})}
    out = []
    for name, per_model in expected_results()["calibration"].items():
        if name.startswith("#"):
            continue
        prog = CALIBRATION[name]
        for mname, want in per_model.items():
            res = check(prog, table[mname], timeout_ms=timeout_ms, seed=seed, explain=False)
            outcome = _tag(res.allowed, "allowed", "forbidden")
            r = OrderingResult("calibration", name, "", mname, "", outcome, want, _verdict(outcome, want), res.ms,
                               res.reason, None, prog.condition_text())
            out.append(r)
            if on_result:
                on_result(r)
    return out


def prove_ordering(*, timeout_ms: int = DEFAULT_TIMEOUT_MS, seed: int = DEFAULT_SEED,
                   with_calibration: bool = True, only: Iterable[str] | None = None,
                   on_result: Callable[[OrderingResult], None] | None = None) -> OrderingReport:
    """The calibration tests, then every configuration on each of its targets; one fresh solver per
    check. ``only`` keeps the configurations whose id starts with one of the given prefixes."""
    rep = OrderingReport(seed=seed, timeout_ms=timeout_ms)
    t0 = time.perf_counter()
    if with_calibration:
        rep.results += calibrate(timeout_ms=timeout_ms, seed=seed, on_result=on_result)
    manifest = expected_results()["obligations"]
    prefixes = tuple(only) if only is not None else None
    for cfg in CONFIGURATIONS:
        if prefixes is not None and not cfg.id.startswith(prefixes):
            continue
        for target in cfg.targets:
            model = MODELS[TARGETS[target]]
            prog = compile_program(cfg.source(), target)
            res = check(prog, model, timeout_ms=timeout_ms, seed=seed)
            ex = replace(res.execution, model=f"{model.name} ({target})") if res.execution is not None else None
            outcome = _tag(res.allowed, "counterexample", "proved")
            want = manifest.get(cfg.id, {}).get(target, "missing from ordering_expected.json")
            r = OrderingResult("handoff", cfg.id, target, model.name, cfg.property, outcome, want,
                               _verdict(outcome, want), res.ms, res.reason, ex, prog.condition_text())
            rep.results.append(r)
            if on_result:
                on_result(r)
    rep.total_ms = (time.perf_counter() - t0) * 1e3
    return rep
