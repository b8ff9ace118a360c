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

from typing import Any

from hypothesis import strategies as st
from hypothesis import target
from hypothesis.stateful import initialize, rule

from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import (
    NETLINK_ADD_MEMBERSHIP,
    NETLINK_BROADCAST_ERROR,
    NETLINK_CAP_ACK,
    NETLINK_DROP_MEMBERSHIP,
    NETLINK_LISTEN_ALL_NSID,
    NETLINK_PKTINFO,
    NL_MMAP_HDRLEN,
    NM_LEN_OFFSET,
    RingRequest,
)

from . import payloads as P
from .machine_base import (
    _LABELS,
    _U32,
    _VALUES,
    RULE_FEATURES,
    BudgetSpent,
    RunContext,
    _label,
    _no_skip,
    needs,
)
from .rules_dump import DumpRules
from .rules_rx import RxRules
from .rules_tx import TxRules
from .session import SockPair

__all__ = ["ConformanceMachine", "RULE_FEATURES", "RunContext", "machine_for"]


class ConformanceMachine(RxRules, TxRules, DumpRules):
    """The user (and the adversary) against the SUT, with the model's answers as the truth: every
    rule of :mod:`.rules_rx`, :mod:`.rules_tx`, :mod:`.rules_dump` and the ones below."""

    # ---- rules ------------------------------------------------------------------------------------
    @initialize(data=st.data())
    def setup(self, data: Any) -> None:
        """Open a socket and, mostly, give it rings and map them (so examples start where bugs live)."""
        self._step("setup")

        self.poll_rate = data.draw(st.sampled_from([0, 2, 5]), label="polls after 1 step in 10")

        self._guard(data, lambda: self.open_socket_now(data))

    @needs("open_socket", lambda self: len(self.open_pairs()) < self.ctx.max_sockets)
    @rule(data=st.data())
    def open_socket(self, data: Any) -> None:
        self._step("open_socket")

        self._guard(data, lambda: self.open_socket_now(data))

    @rule(data=st.data())
    def set_ring(self, data: Any) -> None:
        """setsockopt(NETLINK_RX_RING / NETLINK_TX_RING) with any bytes: mostly on a socket opened
        for it and closed after (its geometry rules and errnos, since a mapped socket answers EBUSY
        before any of them), else on an open socket (EBUSY when mapped)."""
        pairs = self.open_pairs()
        fresh = not pairs or data.draw(st.integers(0, 3), label="on a new socket (0: an open one)") > 0
        p = None if fresh else self._pick(data, pairs)
        ring = data.draw(st.sampled_from(["rx", "tx"]), label="ring")
        optvals = [data.draw(P.ring_optval(self.s.page_size), label="optval")]
        if fresh and data.draw(st.booleans(), label="a second request over the first"):
            optvals.append(data.draw(P.ring_optval(self.s.page_size), label="optval"))
        self._step("set_ring", ("new socket, " if fresh else "") + f"{ring} " + " then ".join(o.hex() for o in optvals))
        opt = "NETLINK_RX_RING" if ring == "rx" else "NETLINK_TX_RING"

        def go() -> None:
            q = self.s.open_socket() if p is None else p
            try:
                for optval in optvals:
                    self.s.exchange("setsockopt", q, option=opt, optval=optval.hex())
            finally:
                if p is None:
                    self.s.close_pair(q)
        self._guard(data, go)

    def _unmapped_with_ring(self) -> list[SockPair]:
        return [p for p in self.open_pairs() if self.ms(p).spec_state["mapped"] == 0 and
                (self.ms(p).rx is not None or self.ms(p).tx is not None)]

    @needs("replace_ring", lambda self: bool(self._unmapped_with_ring()))
    @rule(data=st.data())
    def replace_ring(self, data: Any) -> None:
        """Before mmap, tear a ring down (whatever its frames hold) and maybe set up another."""
        p = self._pick(data, self._unmapped_with_ring())
        m = self.ms(p)
        ring = data.draw(st.sampled_from([r for r in ("rx", "tx") if (m.rx if r == "rx" else m.tx) is not None]),
                         label="ring")
        new = data.draw(st.one_of(st.none(), st.sampled_from(P.geometry_menu(self.s.page_size))), label="new geometry")
        opt = "NETLINK_RX_RING" if ring == "rx" else "NETLINK_TX_RING"
        ack = ring == "rx" and data.draw(st.integers(0, 3), label="an ACK lands in the ring first (0: no)") > 0
        self._step("replace_ring", f"{ring}" + (" after an ACK" if ack else "") + (f" by {new}" if new else ""))

        def go() -> None:
            if ack:  # the kernel fills frames of an unmapped ring too; tear-down takes them as they are
                req = nl.build_message(nl.NLMSG_NOOP, nl.NLM_F_REQUEST | nl.NLM_F_ACK, 0, 0, b"")
                self.s.exchange("sendmsg", p, payload=req.hex(), to="kernel")
            self.s.exchange("setsockopt", p, option=opt, optval=RingRequest(0, 0, 0, 0).pack().hex())
            if new is not None:
                self.s.exchange("setsockopt", p, option=opt, optval=new.pack().hex())
        self._guard(data, go)

    @needs("mmap_rings", lambda self: bool(self.open_pairs()))
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

    @needs("munmap_rings", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def munmap_rings(self, data: Any) -> None:
        """munmap (the optional op): one mapping fewer (EINVAL when unmapped); while mapped, a ring
        change is EBUSY; after the last munmap the rings can change again (tear down, new geometry,
        whatever the frames hold), and be mapped again."""
        mapped = [p for p in self.open_pairs() if self.mapped(p)]
        p = self._pick(data, mapped) if mapped and data.draw(st.integers(0, 7), label="unmapped (0)") else \
            self._pick(data, self.open_pairs())
        ring = data.draw(st.sampled_from(["NETLINK_RX_RING", "NETLINK_TX_RING"]), label="then change ring")
        new = data.draw(st.one_of(st.none(), st.sampled_from(P.geometry_menu(self.s.page_size))), label="new geometry")
        remap = data.draw(st.booleans(), label="map again")
        what = f"-> {new}" if new else "torn down"
        # first, mostly, a status word into a frame of that ring: the tear-down of a frame in each
        # status (one this example has not torn down yet, when there is one)
        short = "rx" if ring == "NETLINK_RX_RING" else "tx"
        geom = (self.ms(p).rx if short == "rx" else self.ms(p).tx) if self.mapped(p) else None
        poke = None
        if geom is not None and data.draw(st.integers(0, 3), label="write a status first (0: no)"):
            labels = [x for x in _LABELS if x != "SKIP" or self.ctx.has("skip")]
            fresh = [x for x in labels if (short, x, "ABSENT", f"teardown_{short}_ring") not in self.s.coverage.recent]
            want = data.draw(st.sampled_from(fresh or labels), label="status")
            val = _VALUES[want] if want != "OTHER" else data.draw(st.sampled_from([5, 0xFF, 0xFFFFFFFF]), label="value")
            j = data.draw(st.integers(0, geom.geom.frame_nr - 1), label="frame")
            poke = (self.ms(p).layout.frame_offset(short, j), val)
        self._step("munmap_rings", (f"{short.upper()}[{poke[0]}] = {poke[1]:#x}, " if poke else "")
                   + f"then {ring} {what}" + (", mmap" if remap else ""))

        def go() -> None:
            if poke is not None:
                self.s.poke(p, poke[0], _U32.pack(poke[1]))
            if self.s.exchange("munmap", p)["ok"]:
                self.s.after_munmap(p)
            self.s.exchange("setsockopt", p, option=ring, optval=RingRequest(0, 0, 0, 0).pack().hex())
            if new is not None:
                self.s.exchange("setsockopt", p, option=ring, optval=new.pack().hex())
            m = self.ms(p)
            if remap and m.spec_state["mapped"] == 0 and (m.rx is not None or m.tx is not None):
                self._mmap(p, m.layout.size, 0)
        self._guard(data, go)

    @needs("received", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def received(self, data: Any) -> None:
        p = self._pick(data, self.open_pairs())
        self._step("received")
        self._guard(data, lambda: self.s.exchange("received", p))

    @needs("poll", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def poll(self, data: Any) -> None:
        p = self._pick(data, self.open_pairs())
        self._step("poll")
        self._guard(data, lambda: self.s.exchange("poll", p))

    @needs("set_no_enobufs", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def set_no_enobufs(self, data: Any) -> None:
        p = self._pick(data, self.open_pairs())
        optval = data.draw(st.sampled_from([_U32.pack(1), _U32.pack(0), _U32.pack(7), b"\x01", b"",
                                            _U32.pack(1) + b"\0\0\0\0"]), label="optval")
        self._step("set_no_enobufs", optval.hex())
        self._guard(data, lambda: self.s.exchange("setsockopt", p, option="NETLINK_NO_ENOBUFS", optval=optval.hex()))

    @needs("set_option", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def set_option(self, data: Any) -> None:
        """The other SOL_NETLINK options: CAP_ACK (error ACK length), memberships, flags, unknown ones."""
        p = self._pick(data, self.open_pairs())
        # by number: the protocol names only the ring options and NO_ENOBUFS (a real agent knows no others)
        option = data.draw(st.sampled_from([NETLINK_CAP_ACK, NETLINK_CAP_ACK, NETLINK_ADD_MEMBERSHIP,
                                            NETLINK_DROP_MEMBERSHIP, NETLINK_PKTINFO, NETLINK_BROADCAST_ERROR,
                                            NETLINK_LISTEN_ALL_NSID, 9, 11, 99]), label="option")
        if option in (NETLINK_ADD_MEMBERSHIP, NETLINK_DROP_MEMBERSHIP):
            optval = _U32.pack(data.draw(P.group_number(), label="group"))
        else:
            optval = data.draw(st.sampled_from([_U32.pack(1), _U32.pack(0), b"\x01"]), label="optval")
        self._step("set_option", f"{option} {optval.hex()}")
        self._guard(data, lambda: self.s.exchange("setsockopt", p, option=option, optval=optval.hex()))

    @needs("close_socket", lambda self: self.n >= 30 and bool(self.open_pairs()))
    @rule(data=st.data())
    def close_socket(self, data: Any) -> None:
        p = self._pick(data, self.open_pairs())
        self._step("close_socket")

        def go() -> None:
            self.s.exchange("received", p)
            self.s.close_pair(p)
        self._guard(data, go)

    @needs("write_status", lambda self: any(self.mapped(p) for p in self.open_pairs()))
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
            held = sorted({_label(w) for w in words})
            pairs = [(h, x) for h in held for x in _LABELS if x != h and (x != "SKIP" or self.ctx.has("skip"))]
            # half the time a (before, after) pair this example has not written yet (the example's own
            # edges, so a replay of the example draws the same)
            act = "write_status" if ring == "rx" else "write_tx"
            fresh = [hw for hw in pairs if (ring, hw[0], hw[1], act) not in self.s.coverage.recent]
            if fresh and data.draw(st.booleans(), label="a pair this example has not written"):
                have, want = data.draw(st.sampled_from(fresh), label="status pair")
            else:
                have = data.draw(st.sampled_from(held), label="frames holding")
                want = data.draw(st.sampled_from([x for h, x in pairs if h == have]), label="new status")
            i = data.draw(st.sampled_from([k for k, w in enumerate(words) if _label(w) == have]), label="frame")
            val = _VALUES[want] if want != "OTHER" else data.draw(st.sampled_from([5, 0xFF, 0x100, 0xFFFFFFFF]),
                                                                    label="value")
            writes.append((ring, i, val))
        self._step("write_status", ", ".join(f"{r.upper()}[{i}] = {v:#x}" for r, i, v in writes))

        def go() -> None:
            for r, i, v in writes:
                self.s.poke(p, m.layout.frame_offset(r, i), _U32.pack(v))
        self._guard(data, go)

    @needs("scribble", lambda self: any(self.mapped(p) for p in self.open_pairs()))
    @rule(data=st.data())
    def scribble(self, data: Any) -> None:
        """The adversary: any bytes anywhere in the mapping, or any nm_len."""
        p = self._pick(data, [p for p in self.open_pairs() if self.mapped(p)])
        lay = self.ms(p).layout
        frames = list(lay.frames())
        if data.draw(st.booleans(), label="nm_len (else bytes)") and frames:
            f = data.draw(st.sampled_from(frames), label="frame")
            off = f.offset + NM_LEN_OFFSET
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

    # ---- end of an example --------------------------------------------------------------------------
    def teardown(self) -> None:
        for label, v in self.seen.items():
            target(v, label=label)
        target(float(len(self.s.coverage.recent)), label="status-machine edges in one example")
        self.ctx.tick()
        if self.dead:
            self.s.close_all()
        else:
            try:
                for p in self.open_pairs():
                    self.s.exchange("received", p)
                    self.s.check_memory(p, full=True)
                    self.s.close_pair(p)
            except BaseException as e:
                self._failed(e)
                raise
        if self.ctx.budget_spent():
            raise BudgetSpent(self.ctx.steps)


def machine_for(ctx: RunContext) -> type[ConformanceMachine]:
    """The machine class bound to one run (Hypothesis instantiates it once per example)."""
    return type("NlmmapConformance", (ConformanceMachine,), {"ctx": ctx})


def optval_for(req: RingRequest) -> str:
    return req.pack().hex()
