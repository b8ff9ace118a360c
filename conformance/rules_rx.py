"""The RX rules of the conformance machine: deliveries by the ring and the copy path, to groups
(also to several members at once), the well-behaved reader, releasing and SKIPping frames, recvmsg."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import rule

from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import NETLINK_ADD_MEMBERSHIP, NETLINK_DROP_MEMBERSHIP, NL_MMAP_HDRLEN, NM_LEN_OFFSET
from nlmmap.spec.family import FAMILY_GROUPS

from . import payloads as P
from .machine_base import _U32, COPY, SKIP, UNUSED, VALID, MachineBase, needs
from .session import SockPair

#: A NOOP request with NLM_F_ACK and its ACK (the length decides whether the ACK takes the ring path).
_NOOP = nl.build_message(nl.NLMSG_NOOP, nl.NLM_F_REQUEST | nl.NLM_F_ACK, 0, 0, b"")
_NOOP_ACK = nl.build_ack(_NOOP, 1)


class RxRules(MachineBase):
    """Rules on the RX side."""

    def _capacity(self, p: SockPair) -> int | None:
        rx = self.ms(p).rx
        return rx.geom.payload_capacity if rx is not None else None

    @needs("deliver_ring", lambda self: bool(self.open_pairs()))
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

    @needs("deliver_copy", lambda self: bool(self._copy_targets()))
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

    @needs("deliver_group", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def deliver_group(self, data: Any) -> None:
        """A multicast message to one of the family's groups (a COPY frame with nm_group)."""
        p = self._pick(data, self.open_pairs())
        group = data.draw(P.group_number(), label="group")
        if group > 0xFFFF:  # the wire carries any non-negative integer; keep it readable
            group = FAMILY_GROUPS + 1
        payload = data.draw(P.group_payload(), label="payload")
        self._step("deliver_group", f"group {group}, {len(payload)} bytes")
        self._guard(data, lambda: self.s.exchange("deliver", p, payload=payload.hex(), path="copy", group=group))

    @needs("multicast_members", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def multicast_members(self, data: Any) -> None:
        """Two sockets and a group: B joins it (NETLINK_ADD_MEMBERSHIP, or a delivery to B joins it),
        then A's peer sends to the group: every member gets its own COPY frame and queued message
        (13.3); sometimes B leaves the group again before a second message."""
        if len(self.open_pairs()) < 2:
            self._step("multicast_members", "(a second socket first)")
            self._guard(data, lambda: self.open_socket_now(data))
        pairs = self.open_pairs()
        a = self._pick(data, pairs)
        b = data.draw(st.sampled_from([q for q in pairs if q is not a]), label="member") if len(pairs) > 1 else a
        group = data.draw(P.group_number(errors=False), label="group")
        how = data.draw(st.sampled_from(["setsockopt", "deliver", "already"]), label="B joins by")
        msgs = [data.draw(P.group_payload(), label="payload") for _ in range(data.draw(st.integers(1, 3)))]
        leave = data.draw(st.booleans(), label="B leaves, then one more")
        self._step("multicast_members", f"group {group}: B joins by {how}, A's peer sends {len(msgs)}"
                                        + (", B leaves, one more" if leave else ""))

        def go() -> None:
            if how == "setsockopt":
                self.s.exchange("setsockopt", b, option=NETLINK_ADD_MEMBERSHIP, optval=_U32.pack(group).hex())
            elif how == "deliver":
                self.s.exchange("deliver", b, payload=msgs[0].hex(), path="copy", group=group)
            for m in msgs:
                self.s.exchange("deliver", a, payload=m.hex(), path="copy", group=group)
            if leave:
                self.s.exchange("setsockopt", b, option=NETLINK_DROP_MEMBERSHIP, optval=_U32.pack(group).hex())
                self.s.exchange("deliver", a, payload=msgs[-1].hex(), path="copy", group=group)
            if data.draw(st.booleans(), label="B reads"):
                self.s.exchange("recvmsg", b, bufsize=4096, dontwait=True)
        self._guard(data, go)

    @needs("release_frame", lambda self: any(self.rx_frames(p, (VALID, COPY, SKIP)) for p in self.with_rx()))
    @rule(data=st.data())
    def release_frame(self, data: Any) -> None:
        """Read a frame the user owns (header, then nm_len bytes) and hand it back (UNUSED)."""
        p = self._pick(data, [p for p in self.with_rx() if self.rx_frames(p, (VALID, COPY, SKIP))])
        i = data.draw(st.sampled_from(self.rx_frames(p, (VALID, COPY, SKIP))), label="frame")
        off = self.ms(p).layout.frame_offset("rx", i)
        self._step("release_frame", f"RX frame {i}")

        def go() -> None:
            hdr = self.s.peek(p, off, NL_MMAP_HDRLEN)
            n = min(_U32.unpack_from(hdr, NM_LEN_OFFSET)[0], self.ms(p).rx.geom.payload_capacity)
            if n:
                self.s.peek(p, off + NL_MMAP_HDRLEN, n)
            self.s.poke(p, off, _U32.pack(UNUSED))
        self._guard(data, go)

    @needs("read_ring", lambda self: bool(self.with_rx()))
    @rule(data=st.data())
    def read_ring(self, data: Any) -> None:
        """A well-behaved reader: from its cursor, in ring order, read each VALID frame (header, then
        nm_len bytes) and release it or keep it (SKIP), fetch each COPY frame's message with recvmsg
        and release it, release frames it kept earlier; stop at the first frame the kernel owns."""
        p = self._pick(data, self.with_rx())
        keep = data.draw(st.sampled_from([0, 0, 2, 3, 1]), label="keep 1 in") if self.ctx.has("skip") else 0
        limit = data.draw(st.sampled_from([1, 2, 100]), label="frames at most")
        self._step("read_ring", f"from frame {p.cursor}, at most {limit}" + (f", SKIP 1 in {keep}" if keep else ""))

        self._guard(data, lambda: self.read_frames(p, limit, keep=keep))

    @needs("skip_frame", lambda self: any(self.rx_frames(p, (VALID,)) for p in self.with_rx()))
    @rule(data=st.data())
    def skip_frame(self, data: Any) -> None:
        """Keep a VALID frame for later (SKIP): ring allocations step over it, the COPY path does not."""
        p = self._pick(data, [p for p in self.with_rx() if self.rx_frames(p, (VALID,))])
        i = data.draw(st.sampled_from(self.rx_frames(p, (VALID,))), label="frame")
        self._step("skip_frame", f"RX frame {i}")
        self._guard(data, lambda: self.s.poke(p, self.ms(p).layout.frame_offset("rx", i), _U32.pack(SKIP)))

    def _skip_targets(self) -> list[SockPair]:
        """Mapped RX rings of 2 to 16 frames (the rule costs ~3 requests a frame) whose frames hold a
        ring-path message the SUT can send: a ``deliver_ring`` message, or else an ACK (36 bytes,
        the real kernel's ring path)."""
        return [p for p in self.with_rx() if 2 <= self.ms(p).rx.geom.frame_nr <= 16
                and (self.ctx.has("deliver_ring") or self.ms(p).fits(len(_NOOP_ACK)))]

    def _ring_message(self, p: SockPair, seq: int) -> None:
        """One kernel-built message through the ring path: a ``deliver`` by the ring path if the SUT
        has it, else the ACK of a NOOP request (what a real kernel builds in a frame)."""
        if self.ctx.has("deliver_ring"):
            self.s.exchange("deliver", p, payload=nl.build_message(0x10, 0, seq, 0, b"").hex(), path="ring")
        else:
            req = nl.build_message(nl.NLMSG_NOOP, nl.NLM_F_REQUEST | nl.NLM_F_ACK, seq, 0, b"")
            self.s.exchange("sendmsg", p, payload=req.hex(), to="kernel")

    @needs("skip_at_cursor", lambda self: bool(self._skip_targets()))
    @rule(data=st.data())
    def skip_at_cursor(self, data: Any) -> None:
        """SKIP at the kernel's cursor with UNUSED frames after it, then ring-path messages (9): the
        user empties the ring, the kernel fills it (the cursor comes round to where it started), the
        user SKIPs the cursor frame (or a run of frames from it, or all of them) and releases the
        rest; the next ring allocation steps over the SKIP run (before 4.4 it failed), a COPY-path
        message is dropped at the SKIP."""
        p = self._pick(data, self._skip_targets())
        n = self.ms(p).rx.geom.frame_nr
        run = data.draw(st.sampled_from([1, 1, 1, 2, n - 1, n]), label="SKIP frames from the cursor")
        then = data.draw(st.sampled_from(["ring", "ring", "ring", "copy"]), label="then")
        if then == "copy" and not self.ctx.has("deliver_copy"):
            then = "ring"
        more = data.draw(st.integers(1, 3), label="messages")
        self._step("skip_at_cursor", f"{run} of {n} frames SKIP at the cursor, then {more} {then} message(s)")

        def go() -> None:
            m = self.ms(p)
            lay = m.layout
            for i, v in enumerate(m.statuses("rx")):  # empty the ring (a COPY frame's message too)
                if v == COPY:
                    self.s.exchange("recvmsg", p, bufsize=65536, dontwait=True)
                if v != UNUSED:
                    self.s.poke(p, lay.frame_offset("rx", i), _U32.pack(UNUSED))
            for k in range(n):
                self._ring_message(p, k)
            h = m.spec_state["rx_head"]
            for k in range(n):  # SKIP the run from the cursor, release the other frames
                i = (h + k) % n
                self.s.poke(p, lay.frame_offset("rx", i), _U32.pack(SKIP if k < run else UNUSED))
            for k in range(more):
                if then == "ring":
                    self._ring_message(p, n + k)
                else:
                    self.s.exchange("deliver", p, payload=nl.build_message(0x10, 0, k, 0, b"").hex(), path="copy")
            p.cursor = (h + run) % n
        self._guard(data, go)

    @needs("recvmsg", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def recvmsg(self, data: Any) -> None:
        """recvmsg with any buffer size; blocking only when something is there (no timed waits)."""
        p = self._pick(data, self.open_pairs())
        m = self.ms(p)
        sizes = [4096, 4096, 0, 1, 15, 16, 35, 36, 40, 64, 16384, 65536]
        if m.rq:  # the head message's own length and one either side: where MSG_TRUNC starts
            sizes += [n for n in (len(m.rq[0].data) + d for d in (0, 0, -1, 1)) if n >= 0]
        bufsize = data.draw(st.sampled_from(sizes), label="bufsize")
        dontwait = True if not (m.rq or m.spec_state["sk_err"]) else data.draw(st.booleans(), label="dontwait")
        self._step("recvmsg", f"bufsize {bufsize}" + ("" if dontwait else " blocking"))
        self._guard(data, lambda: self.s.exchange("recvmsg", p, bufsize=bufsize, dontwait=dontwait))

