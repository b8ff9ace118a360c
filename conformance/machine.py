"""The conformance state machine: a Hypothesis ``RuleBasedStateMachine`` whose rules are the user's
actions on netlink sockets with rings (design.md section 3), played against the SUT and the
reference model at once through a :class:`~.session.Session`.

Rules: open sockets; set rings (valid and invalid geometries, raw optval of any length); mmap (right
and wrong lengths and offsets) and munmap; deliveries by the ring and the copy path and to groups;
read and release frames, SKIP them; recvmsg (every buffer size, blocking and not); fill TX frames
(good, oversized, garbage) and kick them to the kernel or the peer; plain sendmsg (requests with and
without NLM_F_ACK, unknown types, malformed datagrams); poll; NETLINK_NO_ENOBUFS and the other
options; close; the adversary writing any bytes anywhere; a paused TX walk whose frame is rewritten
between validation and use. Rules run only when the SUT has their features (:data:`RULE_FEATURES`;
the others are reported as skipped) and their preconditions hold on the model's state. Hypothesis
picks a random subset of the rules for each example (swarm testing, its rule feature flags), and
``target()`` steers toward full rings, all-SKIP rings, wrap-around, congestion and TX errors after
frames were sent.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st
from hypothesis import target
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from nlmmap.spec.abi import (
    NETLINK_ADD_MEMBERSHIP,
    NETLINK_BROADCAST_ERROR,
    NETLINK_CAP_ACK,
    NETLINK_DROP_MEMBERSHIP,
    NETLINK_PKTINFO,
    NL_MMAP_HDRLEN,
    RingRequest,
    Status,
)

from . import payloads as P
from .session import Session, SockPair

__all__ = ["ConformanceMachine", "RULE_FEATURES", "RunContext", "machine_for"]

_LABELS = ("UNUSED", "RESERVED", "VALID", "COPY", "SKIP", "OTHER")
_VALUES = {s.name: int(s) for s in Status}


def _label(v: int) -> str:
    try:
        return Status(v).name
    except ValueError:
        return "OTHER"


def _no_skip(blob: bytes, off: int, lay: Any) -> bytes:
    """``blob`` with any status word it would set to SKIP changed to 5."""
    b = bytearray(blob)
    for f in lay.frames():
        a = f.offset - off
        if 0 <= a and a + 4 <= len(b) and _U32.unpack_from(b, a)[0] == SKIP:
            _U32.pack_into(b, a, 5)
    return bytes(b)

UNUSED, RESERVED, VALID, COPY, SKIP = (int(s) for s in Status)
_U32 = struct.Struct("=I")

#: Rule -> the SUT features it needs (all of them). Rules whose features are missing are not run
#: and the report lists them with the missing feature.
RULE_FEATURES: dict[str, tuple[str, ...]] = {
    "open_socket": (), "set_ring": (), "replace_ring": (), "mmap_rings": (), "munmap_rings": ("op:munmap",),
    "deliver_ring": ("deliver_ring",), "deliver_copy": ("deliver_copy",),
    "deliver_group": ("deliver_copy", "multicast"), "release_frame": ("rx_ring",), "read_ring": ("rx_ring",),
    "skip_frame": ("rx_ring", "skip"), "recvmsg": (), "fill_tx": ("tx_ring",),
    "kick": (), "send": (), "received": (), "poll": (), "set_no_enobufs": ("no_enobufs",), "set_option": (),
    "close_socket": (), "scribble": (), "write_status": (), "pause_and_rewrite": ("tx_ring", "pause_after_validate"),
}


class RunContext:
    """What every example of one run shares: the session, counters, the failure seen last."""

    def __init__(self, session: Session):
        self.session = session
        self.steps = 0
        self.examples = 0
        self.rule_counts: dict[str, int] = {}
        self.last_failure: tuple[BaseException, list[str]] | None = None
        self.targets: dict[str, float] = {}
        self.first_failure: tuple[int, str] | None = None  # (steps run when it was seen, check)
        self.max_sockets = 2

    def has(self, *features: str) -> bool:
        return all(f in self.session.features for f in features)

    def skipped_rules(self) -> dict[str, str]:
        out = {}
        for name, feats in RULE_FEATURES.items():
            missing = [f for f in feats if f not in self.session.features]
            if missing:
                out[name] = "SUT lacks " + ", ".join(missing)
        return out


def _needs(name: str, when: Callable[[Any], bool] | None = None):
    """Precondition: the rule's features, then ``when(machine)``."""
    feats = RULE_FEATURES[name]

    def pre(self: ConformanceMachine) -> bool:
        if self.dead or not self.ctx.has(*feats):
            return False
        return when(self) if when is not None else True
    return precondition(pre)


class ConformanceMachine(RuleBasedStateMachine):
    """The user (and the adversary) against the SUT, with the model's answers as the truth."""

    ctx: RunContext  # set on the subclass machine_for() builds

    def __init__(self) -> None:
        super().__init__()
        self.s: Session = self.ctx.session
        self.pairs: list[SockPair] = []
        self.dead = False
        self.n = 0
        self.poll_rate = 0
        self.seen = {"rx_full": 0.0, "skip_frames": 0.0, "wraps": 0.0, "drops": 0.0, "tx_error_after_sent": 0.0,
                     "skip_at_cursor": 0.0}
        self.ctx.examples += 1
        self.s.rec.reset(self.s.hello_lines)
        self.s.coverage.recent.clear()
        self.s.close_all()  # sockets a failed example left open
        self.s.pairs = []

    # ---- plumbing -------------------------------------------------------------------------------
    def _step(self, name: str, detail: str = "") -> None:
        self.n += 1
        self.ctx.steps += 1
        self.ctx.rule_counts[name] = self.ctx.rule_counts.get(name, 0) + 1
        self.s.step, self.s.rule = self.n, name
        self.s.rec.case([f"step {self.n}: {name}" + (f" {detail}" if detail else "")])

    def _guard(self, data: Any, fn: Callable[[], None]) -> None:
        try:
            fn()
            if self.poll_rate and self.open_pairs() and \
                    data.draw(st.integers(0, 9), label="then poll") < self.poll_rate:
                p = self._pick(data, self.open_pairs())
                if "POLLERR" in self.s.exchange("poll", p).get("revents", ()):  # a user's loop polls often,
                    self.s.exchange("recvmsg", p, bufsize=4096, dontwait=True)  # and fetches the error it shows
            for p in self.open_pairs():
                self.s.check_memory(p)
            self._observe()
        except BaseException as e:
            self._failed(e)
            raise

    def _failed(self, e: BaseException) -> None:
        self.dead = True
        self.ctx.last_failure = (e, list(self.s.rec.lines))
        if self.ctx.first_failure is None:
            self.ctx.first_failure = (self.ctx.steps, getattr(e, "check", type(e).__name__))

    def open_pairs(self) -> list[SockPair]:
        return [p for p in self.pairs if not p.closed]

    def ms(self, p: SockPair) -> Any:
        return self.s.msock(p)

    def mapped(self, p: SockPair) -> bool:
        return not p.closed and p.mapped and self.ms(p).spec_state["mapped"] > 0

    def _pick(self, data: Any, pairs: list[SockPair]) -> SockPair:
        return pairs[0] if len(pairs) == 1 else data.draw(st.sampled_from(pairs), label="sock")

    def with_rx(self) -> list[SockPair]:
        return [p for p in self.open_pairs() if self.mapped(p) and self.ms(p).rx is not None]

    def with_tx(self) -> list[SockPair]:
        return [p for p in self.open_pairs() if self.mapped(p) and self.ms(p).tx is not None]

    def rx_frames(self, p: SockPair, statuses: tuple[int, ...]) -> list[int]:
        return [i for i, v in enumerate(self.ms(p).statuses("rx")) if v in statuses]

    def _observe(self) -> None:
        for p in self.open_pairs():
            m = self.ms(p)
            if m.rx is not None:
                st_ = m.statuses("rx")
                n = len(st_)
                self.seen["rx_full"] = max(self.seen["rx_full"], sum(v != UNUSED for v in st_) / n)
                self.seen["skip_frames"] = max(self.seen["skip_frames"], sum(v == SKIP for v in st_) / n)
                self.seen["wraps"] = max(self.seen["wraps"], m.spec_state["claims"] / n)
                # graded, for target(): a SKIP frame, one at the kernel's cursor, and with a free frame
                # after it (where an allocation must step over the SKIP run)
                score = 0.0
                if SKIP in st_:
                    score = 1.0
                    if st_[m.spec_state["rx_head"]] == SKIP:
                        score = 2.0 + (UNUSED in st_)
                self.seen["skip_at_cursor"] = max(self.seen["skip_at_cursor"], score)
            self.seen["drops"] = max(self.seen["drops"], min(1.0, float(m.spec_state["drops"])))  # congestion reached

    def _configure(self, data: Any, p: SockPair) -> None:
        menu = P.geometry_menu(self.s.page_size)
        rings = data.draw(st.sampled_from([("rx", "tx"), ("rx", "tx"), ("rx",), ("tx",), ("rx", "tx")]), label="rings")
        size = 0
        for r in rings:
            if not self.ctx.has(f"{r}_ring"):
                continue
            g = data.draw(st.sampled_from(menu), label=f"{r} geometry")
            opt = "NETLINK_RX_RING" if r == "rx" else "NETLINK_TX_RING"
            if self.s.exchange("setsockopt", p, option=opt, optval=g.pack().hex())["ok"]:
                size += g.block_size * g.block_nr
        if size and data.draw(st.integers(0, 7), label="map (7: not yet)") < 7:
            self._mmap(p, size, 0)

    def _mmap(self, p: SockPair, length: int, offset: int) -> dict:
        exp = self.s.exchange("mmap", p, length=length, offset=offset)
        if exp["ok"]:
            self.s.after_mmap(p, exp, self.s.last_got.get("path"))
        return exp

    # ---- rules ------------------------------------------------------------------------------------
    @initialize(data=st.data())
    def setup(self, data: Any) -> None:
        """Open a socket and, mostly, give it rings and map them (so examples start where bugs live)."""
        self._step("setup")

        self.poll_rate = data.draw(st.sampled_from([0, 2, 5]), label="polls after 1 step in 10")

        def go() -> None:
            p = self.s.open_socket()
            self.pairs.append(p)
            if data.draw(st.integers(0, 9), label="configure (9: leave unconfigured)") < 9:
                self._configure(data, p)
        self._guard(data, go)

    @_needs("open_socket", lambda self: len(self.open_pairs()) < self.ctx.max_sockets)
    @rule(data=st.data())
    def open_socket(self, data: Any) -> None:
        self._step("open_socket")

        def go() -> None:
            p = self.s.open_socket()
            self.pairs.append(p)
            if data.draw(st.integers(0, 9), label="configure (9: leave unconfigured)") < 9:
                self._configure(data, p)
        self._guard(data, go)

    @_needs("set_ring", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def set_ring(self, data: Any) -> None:
        """setsockopt(NETLINK_RX_RING / NETLINK_TX_RING) with any bytes (EBUSY when mapped)."""
        p = self._pick(data, self.open_pairs())
        ring = data.draw(st.sampled_from(["rx", "tx"]), label="ring")
        optval = data.draw(P.ring_optval(self.s.page_size), label="optval")
        self._step("set_ring", f"{ring} {optval.hex()}")
        opt = "NETLINK_RX_RING" if ring == "rx" else "NETLINK_TX_RING"
        self._guard(data, lambda: self.s.exchange("setsockopt", p, option=opt, optval=optval.hex()))

    def _unmapped_with_ring(self) -> list[SockPair]:
        return [p for p in self.open_pairs() if self.ms(p).spec_state["mapped"] == 0 and
                (self.ms(p).rx is not None or self.ms(p).tx is not None)]

    @_needs("replace_ring", lambda self: bool(self._unmapped_with_ring()))
    @rule(data=st.data())
    def replace_ring(self, data: Any) -> None:
        """Before mmap, tear a ring down (whatever its frames hold) and maybe set up another."""
        p = self._pick(data, self._unmapped_with_ring())
        m = self.ms(p)
        ring = data.draw(st.sampled_from([r for r in ("rx", "tx") if (m.rx if r == "rx" else m.tx) is not None]),
                         label="ring")
        new = data.draw(st.one_of(st.none(), st.sampled_from(P.geometry_menu(self.s.page_size))), label="new geometry")
        opt = "NETLINK_RX_RING" if ring == "rx" else "NETLINK_TX_RING"
        self._step("replace_ring", f"{ring}" + (f" by {new}" if new else ""))

        def go() -> None:
            self.s.exchange("setsockopt", p, option=opt, optval=RingRequest(0, 0, 0, 0).pack().hex())
            if new is not None:
                self.s.exchange("setsockopt", p, option=opt, optval=new.pack().hex())
        self._guard(data, go)

    @_needs("mmap_rings", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def mmap_rings(self, data: Any) -> None:
        """mmap with the right length, lengths the page rounding accepts, and wrong ones."""
        p = self._pick(data, self.open_pairs())
        total = self.ms(p).layout.size
        page = self.s.page_size
        length = data.draw(st.sampled_from([total, total, total - 1, total - page + 1, total + 1, total - page,
                                            2 * total, page, 0]), label="length")
        offset = data.draw(st.sampled_from([0, 0, 0, 0, page, 1]), label="offset")
        if p.mapped and self.ms(p).spec_state["mapped"] >= 3:
            length, offset = total + 1, 0  # keep VMAs few (a real agent keeps 8 mappings)
        self._step("mmap_rings", f"length {length} offset {offset}")

        def go() -> None:
            exp = self._mmap(p, max(length, 0), offset)
            if exp["ok"] and length != total:
                # the page rounding accepted a shorter length; map the whole again so the newest mapping
                # covers both rings (a real-kernel agent serves peek/poke from its newest mapping only)
                self._mmap(p, total, 0)
        self._guard(data, go)

    @_needs("munmap_rings", lambda self: any(self.mapped(p) for p in self.open_pairs()))
    @rule(data=st.data())
    def munmap_rings(self, data: Any) -> None:
        p = self._pick(data, [p for p in self.open_pairs() if self.mapped(p)])
        self._step("munmap_rings")
        self._guard(data, lambda: self.s.exchange("munmap", p))

    def _capacity(self, p: SockPair) -> int | None:
        rx = self.ms(p).rx
        return rx.geom.payload_capacity if rx is not None else None

    @_needs("deliver_ring", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def deliver_ring(self, data: Any) -> None:
        """A kernel subsystem's message: built in a frame if it fits (netlink_alloc_skb)."""
        p = self._pick(data, self.open_pairs())
        burst = [data.draw(P.deliver_payload(self._capacity(p)), label="payload")
                 for _ in range(data.draw(st.sampled_from([1, 2, 4, 8]), label="messages"))]
        self._step("deliver_ring", f"{len(burst)} messages of {', '.join(str(len(b)) for b in burst)} bytes")

        def go() -> None:
            for payload in burst:
                self.s.exchange("deliver", p, payload=payload.hex(), path="ring")
        self._guard(data, go)

    def _copy_targets(self) -> list[SockPair]:
        return [p for p in self.open_pairs() if self.ms(p).rx is None or self.ctx.has("copy_fallback")]

    @_needs("deliver_copy", lambda self: bool(self._copy_targets()))
    @rule(data=st.data())
    def deliver_copy(self, data: Any) -> None:
        """A user-space peer's message (the COPY path with an RX ring)."""
        p = self._pick(data, self._copy_targets())
        burst = [data.draw(P.deliver_payload(self._capacity(p)), label="payload")
                 for _ in range(data.draw(st.sampled_from([1, 1, 1, 2, 4]), label="messages"))]
        self._step("deliver_copy", f"{len(burst)} messages of {', '.join(str(len(b)) for b in burst)} bytes")

        def go() -> None:
            for payload in burst:
                self.s.exchange("deliver", p, payload=payload.hex(), path="copy")
        self._guard(data, go)

    @_needs("deliver_group", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def deliver_group(self, data: Any) -> None:
        """A multicast message to one of the family's groups (a COPY frame with nm_group)."""
        p = self._pick(data, self.open_pairs())
        group = data.draw(st.sampled_from([1, 2, 3, 16, 28, 32]), label="group")
        payload = data.draw(P.group_payload(), label="payload")
        self._step("deliver_group", f"group {group}, {len(payload)} bytes")
        self._guard(data, lambda: self.s.exchange("deliver", p, payload=payload.hex(), path="copy", group=group))

    @_needs("release_frame", lambda self: any(self.rx_frames(p, (VALID, COPY, SKIP)) for p in self.with_rx()))
    @rule(data=st.data())
    def release_frame(self, data: Any) -> None:
        """Read a frame the user owns (header, then nm_len bytes) and hand it back (UNUSED)."""
        p = self._pick(data, [p for p in self.with_rx() if self.rx_frames(p, (VALID, COPY, SKIP))])
        i = data.draw(st.sampled_from(self.rx_frames(p, (VALID, COPY, SKIP))), label="frame")
        off = self.ms(p).layout.frame_offset("rx", i)
        self._step("release_frame", f"RX frame {i}")

        def go() -> None:
            hdr = self.s.peek(p, off, NL_MMAP_HDRLEN)
            n = min(_U32.unpack_from(hdr, 4)[0], self.ms(p).rx.geom.payload_capacity)
            if n:
                self.s.peek(p, off + NL_MMAP_HDRLEN, n)
            self.s.poke(p, off, _U32.pack(UNUSED))
        self._guard(data, go)

    @_needs("read_ring", lambda self: bool(self.with_rx()))
    @rule(data=st.data())
    def read_ring(self, data: Any) -> None:
        """A well-behaved reader: from its cursor, in ring order, read each VALID frame (header, then
        nm_len bytes) and release it or keep it (SKIP), fetch each COPY frame's message with recvmsg
        and release it, release frames it kept earlier; stop at the first frame the kernel owns."""
        p = self._pick(data, self.with_rx())
        keep = data.draw(st.sampled_from([0, 0, 2, 3, 1]), label="keep 1 in") if self.ctx.has("skip") else 0
        limit = data.draw(st.sampled_from([1, 2, 100]), label="frames at most")
        self._step("read_ring", f"from frame {p.cursor}, at most {limit}" + (f", SKIP 1 in {keep}" if keep else ""))

        def go() -> None:
            m = self.ms(p)
            n, lay, cap = m.rx.geom.frame_nr, m.layout, m.rx.geom.payload_capacity
            p.cursor %= n
            for k in range(min(limit, n)):
                off = lay.frame_offset("rx", p.cursor)
                hdr = self.s.peek(p, off, NL_MMAP_HDRLEN)
                status, ln = _U32.unpack_from(hdr, 0)[0], min(_U32.unpack_from(hdr, 4)[0], cap)
                if status == VALID:
                    if ln:
                        self.s.peek(p, off + NL_MMAP_HDRLEN, ln)
                    kept = keep and k % keep == 0
                    self.s.poke(p, off, _U32.pack(SKIP if kept else UNUSED))
                elif status == COPY:
                    self.s.exchange("recvmsg", p, bufsize=65536, dontwait=True)
                    self.s.poke(p, off, _U32.pack(UNUSED))
                elif status == SKIP:
                    self.s.poke(p, off, _U32.pack(UNUSED))
                else:
                    break
                p.cursor = (p.cursor + 1) % n
        self._guard(data, go)

    @_needs("skip_frame", lambda self: any(self.rx_frames(p, (VALID,)) for p in self.with_rx()))
    @rule(data=st.data())
    def skip_frame(self, data: Any) -> None:
        """Keep a VALID frame for later (SKIP): ring allocations step over it, the COPY path does not."""
        p = self._pick(data, [p for p in self.with_rx() if self.rx_frames(p, (VALID,))])
        i = data.draw(st.sampled_from(self.rx_frames(p, (VALID,))), label="frame")
        self._step("skip_frame", f"RX frame {i}")
        self._guard(data, lambda: self.s.poke(p, self.ms(p).layout.frame_offset("rx", i), _U32.pack(SKIP)))

    @_needs("recvmsg", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def recvmsg(self, data: Any) -> None:
        """recvmsg with any buffer size; blocking only when something is there (no timed waits)."""
        p = self._pick(data, self.open_pairs())
        bufsize = data.draw(st.sampled_from([4096, 4096, 0, 1, 15, 16, 35, 36, 40, 64, 16384, 65536]), label="bufsize")
        m = self.ms(p)
        dontwait = True if not (m.rq or m.spec_state["sk_err"]) else data.draw(st.booleans(), label="dontwait")
        self._step("recvmsg", f"bufsize {bufsize}" + ("" if dontwait else " blocking"))
        self._guard(data, lambda: self.s.exchange("recvmsg", p, bufsize=bufsize, dontwait=dontwait))

    @_needs("fill_tx", lambda self: any(self._tx_unused(p) for p in self.with_tx()))
    @rule(data=st.data())
    def fill_tx(self, data: Any) -> None:
        """Write a message into an UNUSED TX frame (mostly the next in ring order): good requests,
        an nm_len past the frame, garbage bytes; payload, nm_len, then VALID."""
        p = self._pick(data, [p for p in self.with_tx() if self._tx_unused(p)])
        free = self._tx_unused(p)
        nxt = self._tx_next(p)
        i = nxt if nxt in free and data.draw(st.integers(0, 3), label="in order") else \
            data.draw(st.sampled_from(free), label="frame")
        g = self.ms(p).tx.geom
        cap = g.payload_capacity
        kind = data.draw(st.sampled_from(["request"] * 5 + ["oversized", "garbage", "empty"]), label="kind")
        if kind == "request":
            body = data.draw(P.datagram(max_len=cap), label="messages")
            nm_len = len(body)
        elif kind == "oversized":
            body = data.draw(P.datagram(max_len=cap), label="messages")
            nm_len = data.draw(st.sampled_from([cap + 1, cap + 4, 0xFFFFFFFF, 2 * g.frame_size]), label="nm_len")
        elif kind == "garbage":
            nm_len = data.draw(st.integers(0, cap), label="nm_len")
            body = data.draw(P.pattern(nm_len), label="bytes")
        else:
            body, nm_len = b"", 0
        off = self.ms(p).layout.frame_offset("tx", i)
        more = data.draw(st.sampled_from([0, 0, 0, 1, 3]), label="more frames in order") if kind == "request" else 0
        self._step("fill_tx", f"TX frame {i}: {kind}, nm_len {nm_len}" + (f", then {more} more" if more else ""))

        def fill(off: int, body: bytes, nm_len: int) -> None:
            if body:
                self.s.poke(p, off + NL_MMAP_HDRLEN, body)
            self.s.poke(p, off + 4, _U32.pack(nm_len))
            self.s.poke(p, off, _U32.pack(VALID))

        def go() -> None:
            fill(off, body, nm_len)
            j = i
            for _ in range(more):
                j = (j + 1) % g.frame_nr
                if self.ms(p).statuses("tx")[j] != UNUSED:
                    break
                msg = data.draw(P.datagram(max_len=cap), label="messages")
                fill(self.ms(p).layout.frame_offset("tx", j), msg, len(msg))
        self._guard(data, go)

    def _tx_unused(self, p: SockPair) -> list[int]:
        m = self.ms(p)
        return [] if m.tx is None else [i for i, v in enumerate(m.statuses("tx")) if v == UNUSED]

    def _tx_next(self, p: SockPair) -> int:
        """The frame a user filling in ring order writes next: the first UNUSED one from the kernel's
        TX cursor (the user cannot see the cursor; a careful user tracks it the same way)."""
        m = self.ms(p)
        st_, h = m.statuses("tx"), m.spec_state["tx_head"]
        for k in range(len(st_)):
            j = (h + k) % len(st_)
            if st_[j] == UNUSED:
                return j
        return h

    @_needs("kick", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def kick(self, data: Any) -> None:
        """sendmsg(NULL, 0): the TX ring walk (a 0-byte send without a TX ring)."""
        p = self._pick(data, self.open_pairs())
        to = data.draw(st.sampled_from(["kernel", "kernel", "peer"]), label="to")
        self._step("kick", f"to {to}")

        def go() -> None:
            m = self.ms(p)
            before = m.spec_state["tx_head"]
            exp = self.s.exchange("sendmsg", p, payload=None, to=to)
            if not exp["ok"] and m.tx is not None and m.spec_state["tx_head"] != before:
                self.seen["tx_error_after_sent"] = max(self.seen["tx_error_after_sent"], 1.0)
        self._guard(data, go)

    @_needs("send", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def send(self, data: Any) -> None:
        """A plain sendmsg: requests to the kernel (ACKs through the ring), or any bytes to the peer."""
        p = self._pick(data, self.open_pairs())
        to = data.draw(st.sampled_from(["kernel", "kernel", "peer"]), label="to")
        big = data.draw(st.integers(0, 199), label="size class") == 0
        if big:  # past SO_SNDBUF - 32: EMSGSIZE; to the kernel also just under it
            from nlmmap.spec.netlink import DEFAULT_SNDBUF

            over = 1 if to == "peer" else data.draw(st.sampled_from([1, 0]), label="over")
            payload = bytes(DEFAULT_SNDBUF - 32 + over)
        elif to == "kernel":
            payload = data.draw(st.one_of(P.datagram(), st.just(b"")), label="datagram")
        else:
            payload = data.draw(st.one_of(P.datagram(to_kernel=False), P.pattern(data.draw(st.integers(0, 300)))),
                                label="bytes")
        self._step("send", f"{len(payload)} bytes to {to}")
        self._guard(data, lambda: self.s.exchange("sendmsg", p, payload=payload.hex(), to=to))

    @_needs("received", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def received(self, data: Any) -> None:
        p = self._pick(data, self.open_pairs())
        self._step("received")
        self._guard(data, lambda: self.s.exchange("received", p))

    @_needs("poll", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def poll(self, data: Any) -> None:
        p = self._pick(data, self.open_pairs())
        self._step("poll")
        self._guard(data, lambda: self.s.exchange("poll", p))

    @_needs("set_no_enobufs", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def set_no_enobufs(self, data: Any) -> None:
        p = self._pick(data, self.open_pairs())
        optval = data.draw(st.sampled_from([_U32.pack(1), _U32.pack(0), _U32.pack(7), b"\x01", b"",
                                            _U32.pack(1) + b"\0\0\0\0"]), label="optval")
        self._step("set_no_enobufs", optval.hex())
        self._guard(data, lambda: self.s.exchange("setsockopt", p, option="NETLINK_NO_ENOBUFS", optval=optval.hex()))

    @_needs("set_option", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def set_option(self, data: Any) -> None:
        """The other SOL_NETLINK options: CAP_ACK (error ACK length), memberships, flags, unknown ones."""
        p = self._pick(data, self.open_pairs())
        # by number: the protocol names only the ring options and NO_ENOBUFS (a real agent knows no others)
        option = data.draw(st.sampled_from([NETLINK_CAP_ACK, NETLINK_CAP_ACK, NETLINK_ADD_MEMBERSHIP,
                                            NETLINK_DROP_MEMBERSHIP, NETLINK_PKTINFO, NETLINK_BROADCAST_ERROR,
                                            9, 11, 99]), label="option")
        if option in (NETLINK_ADD_MEMBERSHIP, NETLINK_DROP_MEMBERSHIP):
            optval = _U32.pack(data.draw(st.sampled_from([1, 3, 28, 32, 0, 33, 1000]), label="group"))
        else:
            optval = data.draw(st.sampled_from([_U32.pack(1), _U32.pack(0), b"\x01"]), label="optval")
        self._step("set_option", f"{option} {optval.hex()}")
        self._guard(data, lambda: self.s.exchange("setsockopt", p, option=option, optval=optval.hex()))

    @_needs("close_socket", lambda self: self.n >= 30 and bool(self.open_pairs()))
    @rule(data=st.data())
    def close_socket(self, data: Any) -> None:
        p = self._pick(data, self.open_pairs())
        self._step("close_socket")

        def go() -> None:
            self.s.exchange("received", p)
            self.s.close_pair(p)
        self._guard(data, go)

    @_needs("write_status", lambda self: any(self.mapped(p) for p in self.open_pairs()))
    @rule(data=st.data())
    def write_status(self, data: Any) -> None:
        """The adversary writes a status word: any frame of either ring, any value (statuses and
        values that are none), chosen so that every (status before, status after) pair comes up."""
        p = self._pick(data, [p for p in self.open_pairs() if self.mapped(p)])
        m = self.ms(p)
        rings = [r for r in ("rx", "tx") if (m.rx if r == "rx" else m.tx) is not None]
        writes = []
        for _ in range(data.draw(st.integers(1, 6), label="writes")):
            ring = data.draw(st.sampled_from(rings), label="ring")
            words = m.statuses(ring)
            for r_, i_, v_ in writes:  # the statuses after the writes drawn so far
                if r_ == ring:
                    words[i_] = v_
            have = data.draw(st.sampled_from(sorted({_label(w) for w in words})), label="frames holding")
            i = data.draw(st.sampled_from([k for k, w in enumerate(words) if _label(w) == have]), label="frame")
            labels = [x for x in _LABELS if x != have and (x != "SKIP" or self.ctx.has("skip"))]
            want = data.draw(st.sampled_from(labels), label="new status")
            val = _VALUES[want] if want != "OTHER" else data.draw(st.sampled_from([5, 0xFF, 0x100, 0xFFFFFFFF]),
                                                                    label="value")
            writes.append((ring, i, val))
        self._step("write_status", ", ".join(f"{r.upper()}[{i}] = {v:#x}" for r, i, v in writes))

        def go() -> None:
            for r, i, v in writes:
                self.s.poke(p, m.layout.frame_offset(r, i), _U32.pack(v))
        self._guard(data, go)

    @_needs("scribble", lambda self: any(self.mapped(p) for p in self.open_pairs()))
    @rule(data=st.data())
    def scribble(self, data: Any) -> None:
        """The adversary: any bytes anywhere in the mapping, or any nm_len."""
        p = self._pick(data, [p for p in self.open_pairs() if self.mapped(p)])
        lay = self.ms(p).layout
        frames = list(lay.frames())
        if data.draw(st.booleans(), label="nm_len (else bytes)") and frames:
            f = data.draw(st.sampled_from(frames), label="frame")
            off = f.offset + 4
            val = data.draw(st.sampled_from([0, 1, 16, f.frame_size - NL_MMAP_HDRLEN, f.frame_size, 0xFFFFFFFF]),
                            label="value")
            blob = _U32.pack(val)
            what = f"{f.ring.upper()}[{f.index}] nm_len = {val:#x}"
        else:
            off = data.draw(st.integers(0, lay.size - 1), label="offset")
            n = data.draw(st.integers(1, min(64, lay.size - off)), label="length")
            blob = data.draw(P.pattern(n), label="bytes")
            if not self.ctx.has("skip"):  # no SKIP in a status word of a SUT without SKIP
                blob = _no_skip(blob, off, lay)
            what = f"{n} bytes at {off}"
        self._step("scribble", what)
        self._guard(data, lambda: self.s.poke(p, off, blob))

    @_needs("pause_and_rewrite", lambda self: any(self._tx_head_valid(p) for p in self.with_tx()))
    @rule(data=st.data())
    def pause_and_rewrite(self, data: Any) -> None:
        """TOCTOU: kick with pause_after_validate, rewrite the frame (message, nm_len or status) while
        the kernel holds what it validated, resume; what it acted on must be what it validated."""
        p = self._pick(data, [p for p in self.with_tx() if self._tx_head_valid(p)])
        m = self.ms(p)
        to = data.draw(st.sampled_from(["kernel", "kernel", "peer"]), label="to")
        j = m.spec_state["tx_head"]
        off = m.layout.frame_offset("tx", j)
        cap = m.tx.geom.payload_capacity
        what = data.draw(st.sampled_from(["message", "message", "nm_len", "status", "all"]), label="rewrite")
        self._step("pause_and_rewrite", f"TX frame {j} to {to}, rewrite {what}")

        def go() -> None:
            exp = self.s.exchange("sendmsg", p, payload=None, to=to, pause_after_validate=True)
            if "paused" not in exp:
                return
            self.s.check_memory(p, full=True)  # the frame as the kernel left it while it holds the message
            if what in ("message", "all"):
                self.s.poke(p, off + NL_MMAP_HDRLEN, data.draw(P.datagram(max_len=cap), label="new message"))
            if what in ("nm_len", "all"):
                self.s.poke(p, off + 4, _U32.pack(data.draw(st.sampled_from([0, 16, cap, cap + 1, 0xFFFF]),
                                                            label="new nm_len")))
            if what in ("status", "all"):
                self.s.poke(p, off, _U32.pack(data.draw(st.sampled_from([VALID, UNUSED, SKIP]), label="new status")))
            self.s.exchange("resume", None, token=exp["paused"])
        self._guard(data, go)

    def _tx_head_valid(self, p: SockPair) -> bool:
        m = self.ms(p)
        return m.tx is not None and m.statuses("tx")[m.spec_state["tx_head"]] == VALID

    # ---- end of an example --------------------------------------------------------------------------
    def teardown(self) -> None:
        for label, v in self.seen.items():
            target(v, label=label)
        target(float(len(self.s.coverage.recent)), label="status-machine edges in one example")
        if self.dead:
            self.s.close_all()
            return
        try:
            for p in self.open_pairs():
                self.s.exchange("received", p)
                self.s.check_memory(p, full=True)
                self.s.close_pair(p)
        except BaseException as e:
            self._failed(e)
            raise


def machine_for(ctx: RunContext) -> type[ConformanceMachine]:
    """The machine class bound to one run (Hypothesis instantiates it once per example)."""
    return type("NlmmapConformance", (ConformanceMachine,), {"ctx": ctx})


def optval_for(req: RingRequest) -> str:
    return req.pack().hex()
