"""The dump rule of the conformance machine (feature ``dump``): a dump requested in-band
(:func:`nlmmap.spec.family.dump_request`, section 10) with messages that fit a frame and messages
that do not, few and many, sometimes while the RX ring is full, sometimes after a large recvmsg
raised ``max_recvmsg_len`` (so the first allocation attempt is larger than a frame: the dump goes
through COPY frames); then continued as a user does, with poll and recvmsg, reading the frames in
between. The oracle's answers and memory are compared at every request, as in every rule."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import rule

from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import NL_MMAP_HDRLEN, NM_LEN_OFFSET, RingRequest
from nlmmap.spec.family import DUMP_MAX_MESSAGES, dump_request

from . import payloads as P
from .machine_base import _U32, COPY, UNUSED, VALID, MachineBase, needs
from .session import SockPair

__all__ = ["DumpRules"]

#: Message payload sizes of a dump (the oracle decides which are too big: EINVAL in an error ACK).
DUMP_SIZES = (0, 1, 16, 100, 500, 1000, 2000, 3000, 3700, 3740, 3741, 3744, 4000)
#: Message counts of a dump (DUMP_MAX_MESSAGES + 1 is refused).
DUMP_COUNTS = (0, 1, 2, 3, 5, 10, 40, 200)


class DumpRules(MachineBase):
    """Dumps requested in-band and continued by poll and recvmsg."""

    def _dump_geometries(self) -> list[RingRequest]:
        """RX rings for a fresh dump socket: frames too small for a dump skb (COPY), a page (room
        for NLMSG_GOODSIZE, with headroom a 4.4.34 kernel would reserve), two pages."""
        page = self.s.page_size
        return [RingRequest(page, 1, page, 1), RingRequest(2 * page, 1, page, 2), RingRequest(2 * page, 1, 2 * page, 1),
                RingRequest(page, 1, 1024, 4), RingRequest(4 * page, 1, 2 * page, 2)]

    def _fresh_dump_socket(self, data: Any) -> SockPair:
        p = self.s.open_socket()
        self.pairs.append(p)
        g = data.draw(st.sampled_from(self._dump_geometries()), label="dump socket RX ring")
        if self.ctx.has("rx_ring") and self.s.exchange("setsockopt", p, option="NETLINK_RX_RING",
                                                       optval=g.pack().hex())["ok"]:
            exp = self.s.exchange("mmap", p, length=g.block_size * g.block_nr, offset=0)
            if exp["ok"]:
                self.s.after_mmap(p, exp, self.s.last_got.get("path"))
        return p

    def _fill_ring(self, p: SockPair) -> None:
        """Requests with NLM_F_ACK until the ACKs (ring or COPY frames) leave no frame UNUSED."""
        m = self.ms(p)
        for seq in range(m.rx.geom.frame_nr + 1):
            if UNUSED not in m.statuses("rx"):
                return
            req = nl.build_message(nl.NLMSG_NOOP, nl.NLM_F_REQUEST | nl.NLM_F_ACK, seq, 0, b"")
            self.s.exchange("sendmsg", p, payload=req.hex(), to="kernel")

    def _raise_recvmsg_len(self, p: SockPair, bufsize: int) -> None:
        """A message from the peer, taken with a large recvmsg (max_recvmsg_len = bufsize, capped),
        and its COPY frame released."""
        m = self.ms(p)
        head = m.spec_state["rx_head"] if m.rx is not None else None
        exp = self.s.exchange("deliver", p, payload=nl.build_message(0x10, 0, 0, 0, b"\0" * 4).hex(), path="copy")
        self.s.exchange("recvmsg", p, bufsize=bufsize, dontwait=True)
        if exp.get("outcome") == "copy" and head is not None and m.rx is not None and self.mapped(p) \
                and m.statuses("rx")[head] == COPY:
            self.s.poke(p, m.layout.frame_offset("rx", head), _U32.pack(UNUSED))

    def _send_request(self, p: SockPair, req: bytes, via_tx: bool) -> None:
        m = self.ms(p)
        if via_tx and m.tx is not None and len(req) <= m.tx.geom.payload_capacity and self.mapped(p):
            j = self._tx_slot(p)
            if j is not None:
                off = m.layout.frame_offset("tx", j)
                self.s.poke(p, off + NL_MMAP_HDRLEN, req)
                self.s.poke(p, off + NM_LEN_OFFSET, _U32.pack(len(req)))
                self.s.poke(p, off, _U32.pack(VALID))
                self.s.exchange("sendmsg", p, payload=None, to="kernel")
                return
        self.s.exchange("sendmsg", p, payload=req.hex(), to="kernel")

    def _tx_slot(self, p: SockPair) -> int | None:
        """The TX cursor's frame if it is UNUSED (a kick then sends exactly this request)."""
        m = self.ms(p)
        h = m.spec_state["tx_head"]
        return h if m.statuses("tx")[h] == UNUSED else None

    def _continue(self, p: SockPair, rounds: int, bufsize: int) -> None:
        """Continue the dump as a user does: poll (netlink_dump while dump_space), then read the
        frames (COPY messages by recvmsg, which continues it too), until it ends or ``rounds``."""
        for _ in range(rounds):
            m = self.ms(p)
            if m.dump is None and not m.rq:
                return
            self.s.exchange("poll", p)
            if m.rx is not None and self.mapped(p):
                self.read_frames(p, m.rx.geom.frame_nr, bufsize=bufsize)
            else:
                self.s.exchange("recvmsg", p, bufsize=bufsize, dontwait=True)

    @needs("dump")
    @rule(data=st.data())
    def dump(self, data: Any) -> None:
        """Request a dump (sizes that fit a frame and that do not, small and large counts; while the
        ring is full; after a large recvmsg), then continue it with poll and recvmsg."""
        fresh = not self.open_pairs() or (len(self.open_pairs()) < self.ctx.max_sockets
                                          and data.draw(st.booleans(), label="fresh socket"))
        size = data.draw(st.sampled_from(DUMP_SIZES), label="message payload bytes")
        counts = DUMP_COUNTS if size > 16 else DUMP_COUNTS + (DUMP_MAX_MESSAGES, DUMP_MAX_MESSAGES + 1)
        count = data.draw(st.sampled_from(counts), label="messages")  # the most messages only when small
        full = data.draw(st.integers(0, 3), label="ring full first (0)") == 0
        raise_to = data.draw(st.sampled_from([0, 0, 0, 4096, 8192, 16384, 65536]), label="recvmsg first")
        flags = nl.NLM_F_REQUEST | nl.NLM_F_DUMP | data.draw(st.sampled_from([0, nl.NLM_F_ACK]), label="ack")
        via_tx = data.draw(st.booleans(), label="request through the TX ring")
        rounds = data.draw(st.sampled_from([0, 1, 3, 30]), label="continuation rounds")
        bufsize = data.draw(st.sampled_from([4096, 16384, 65536, 64]), label="recvmsg bufsize")
        self._step("dump", f"{count} x {size} bytes" + (" on a fresh socket" if fresh else "")
                   + (" into a full ring" if full else "") + (f" after recvmsg({raise_to})" if raise_to else "")
                   + f", {rounds} rounds")

        def go() -> None:
            p = self._fresh_dump_socket(data) if fresh else self._pick(data, self.open_pairs())
            m = self.ms(p)
            if raise_to and self.ctx.has("deliver_copy") and (m.rx is None or self.ctx.has("copy_fallback")):
                self._raise_recvmsg_len(p, raise_to)
            if full and m.rx is not None and self.mapped(p):
                self._fill_ring(p)
            seq = data.draw(st.integers(0, 3), label="seq")
            self._send_request(p, dump_request(count, size, seq=seq, flags=flags, portid=P.REQUEST_PID), via_tx)
            if full and m.rx is not None and self.mapped(p):
                self.s.exchange("poll", p)  # a dump blocked by the full ring stays registered
                self.read_frames(p, m.rx.geom.frame_nr, bufsize=bufsize)
            self._continue(p, rounds, bufsize)
        self._guard(data, go)
