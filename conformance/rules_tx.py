"""The TX rules of the conformance machine: fill TX frames (good, oversized, garbage), kicks to the
kernel or the peer, plain sends, and the paused TX walk whose frame is rewritten (TOCTOU)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import rule

from nlmmap.spec.abi import NL_MMAP_HDRLEN, NM_LEN_OFFSET

from . import payloads as P
from .machine_base import _U32, RESERVED, SKIP, UNUSED, VALID, MachineBase, needs
from .session import SockPair


class TxRules(MachineBase):
    """Rules on the TX side."""

    @needs("fill_tx", lambda self: any(self._tx_unused(p) for p in self.with_tx()))
    @rule(data=st.data())
    def fill_tx(self, data: Any) -> None:
        """Write a message into an UNUSED TX frame (mostly the next in ring order): good requests,
        one request filling the frame, an nm_len past the frame, garbage bytes; payload, nm_len, then
        VALID; sometimes a run of frames, the last one oversized, and a kick (a walk that fails after
        it sent some)."""
        p = self._pick(data, [p for p in self.with_tx() if self._tx_unused(p)])
        free = self._tx_unused(p)
        nxt = self._tx_next(p)
        i = nxt if nxt in free and data.draw(st.integers(0, 3), label="in order") else \
            data.draw(st.sampled_from(free), label="frame")
        g = self.ms(p).tx.geom
        cap = g.payload_capacity
        kind = data.draw(st.sampled_from(["request"] * 5 + ["full", "oversized", "garbage", "empty"]), label="kind")
        if kind == "request":
            body = data.draw(P.datagram(max_len=cap), label="messages")
            nm_len = len(body)
        elif kind == "full":  # one ACKed request filling the frame to its last byte (nm_len == cap)
            body = P.padded_request(data.draw(P.acked_noop(), label="request"), cap)
            nm_len = len(body)
        elif kind == "oversized":
            body = data.draw(P.datagram(max_len=cap), label="messages")
            nm_len = data.draw(st.sampled_from([cap + 1, cap + 4, 0xFFFFFFFF, 2 * g.frame_size]), label="nm_len")
        elif kind == "garbage":
            # nm_len == cap is the largest the kernel takes (it refuses only nm_len > cap)
            nm_len = data.draw(st.one_of(st.just(cap), st.integers(0, cap)), label="nm_len")
            body = data.draw(P.pattern(nm_len), label="bytes")
        else:
            body, nm_len = b"", 0
        off = self.ms(p).layout.frame_offset("tx", i)
        more = data.draw(st.sampled_from([0, 0, 0, 1, 3]), label="more frames in order") if kind == "request" else 0
        # good frames then a bad one: a kick that fails after it sent some (its count is discarded)
        bad_last = bool(more) and data.draw(st.booleans(), label="the last of them oversized")
        kick_to = data.draw(st.sampled_from(["kernel", None, "peer", None]), label="then kick (None: no)") \
            if more or kind == "full" else None
        self._step("fill_tx", f"TX frame {i}: {kind}, nm_len {nm_len}" + (f", then {more} more" if more else "")
                   + (", the last oversized" if bad_last else "") + (f", kick to {kick_to}" if kick_to else ""))

        def fill(off: int, body: bytes, nm_len: int) -> None:
            if body:
                self.s.poke(p, off + NL_MMAP_HDRLEN, body)
            self.s.poke(p, off + NM_LEN_OFFSET, _U32.pack(nm_len))
            self.s.poke(p, off, _U32.pack(VALID))

        def go() -> None:
            fill(off, body, nm_len)
            j = i
            for k in range(more):
                j = (j + 1) % g.frame_nr
                if self.ms(p).statuses("tx")[j] != UNUSED:
                    break
                msg = data.draw(P.datagram(max_len=cap), label="messages")
                fill(self.ms(p).layout.frame_offset("tx", j), msg, cap + 1 if bad_last and k == more - 1 else len(msg))
            if kick_to is not None:
                self._kick(p, kick_to)
        self._guard(data, go)

    def _tx_unused(self, p: SockPair) -> list[int]:
        """The TX frames a user may fill: the UNUSED ones, and the frame at the kernel's cursor when
        an adversarial write left a word there the walk stops at (not VALID, not RESERVED): a user
        overwrites it to get the ring going again, else the walk never moves past it."""
        m = self.ms(p)
        if m.tx is None:
            return []
        st_, h = m.statuses("tx"), m.spec_state["tx_head"]
        return [i for i, v in enumerate(st_) if v == UNUSED or (i == h and v not in (VALID, RESERVED))]

    def _tx_next(self, p: SockPair) -> int:
        """The frame a user filling in ring order writes next: the first UNUSED one from the kernel's
        TX cursor, or the cursor's own frame if it holds a stray word (the user cannot see the
        cursor; a careful user tracks it the same way)."""
        m = self.ms(p)
        st_, h = m.statuses("tx"), m.spec_state["tx_head"]
        if st_[h] not in (VALID, RESERVED):
            return h
        for k in range(len(st_)):
            j = (h + k) % len(st_)
            if st_[j] == UNUSED:
                return j
        return h

    @needs("kick", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def kick(self, data: Any) -> None:
        """sendmsg(NULL, 0): the TX ring walk (a 0-byte send without a TX ring); mostly on a socket
        whose TX cursor frame is VALID, where the walk has work."""
        ready = [p for p in self.with_tx() if self.ms(p).statuses("tx")[self.ms(p).spec_state["tx_head"]] == VALID]
        pool = ready if ready and data.draw(st.integers(0, 3), label="a socket with work (0: any)") else \
            self.open_pairs()
        p = self._pick(data, pool)
        to = data.draw(st.sampled_from(["kernel", "kernel", "peer"]), label="to")
        self._step("kick", f"to {to}")

        self._guard(data, lambda: self._kick(p, to))

    def _kick(self, p: SockPair, to: str) -> None:
        m = self.ms(p)
        before = m.spec_state["tx_head"] if m.tx is not None else None
        exp = self.s.exchange("sendmsg", p, payload=None, to=to)
        if not exp["ok"] and m.tx is not None and m.spec_state["tx_head"] != before:
            self.seen["tx_error_after_sent"] = max(self.seen["tx_error_after_sent"], 1.0)

    @needs("send", lambda self: bool(self.open_pairs()))
    @rule(data=st.data())
    def send(self, data: Any) -> None:
        """A plain sendmsg: requests to the kernel (ACKs through the ring), or any bytes to the peer."""
        p = self._pick(data, self.open_pairs())
        to = data.draw(st.sampled_from(["kernel", "kernel", "peer"]), label="to")
        # SO_SNDBUF's edge: 1 in 40 sends, 1 in 1000 once peeks have shown a slow link (a
        # quarter-megabyte line costs a real kernel's serial link ~40 s)
        big = data.draw(st.integers(0, 999), label="size class") < (1 if self.s.touched_mode else 25)
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

    @needs("pause_and_rewrite", lambda self: any(self._tx_head_fillable(p) for p in self.with_tx()))
    @rule(data=st.data())
    def pause_and_rewrite(self, data: Any) -> None:
        """TOCTOU: a good message at the kernel's TX cursor (written now, or the one there), a kick
        with pause_after_validate, a rewrite (message, nm_len or status) while the kernel holds what
        it validated, resume; what it acted on must be what it validated."""
        p = self._pick(data, [p for p in self.with_tx() if self._tx_head_fillable(p)])
        m = self.ms(p)
        to = data.draw(st.sampled_from(["kernel", "kernel", "peer"]), label="to")
        j = m.spec_state["tx_head"]
        off = m.layout.frame_offset("tx", j)
        cap = m.tx.geom.payload_capacity
        fresh = m.statuses("tx")[j] != VALID or data.draw(st.integers(0, 3), label="write a good message first") > 0
        first = data.draw(st.one_of(P.acked_noop(max_len=cap), P.datagram(max_len=cap)), label="message") \
            if fresh else b""
        what = data.draw(st.sampled_from(["message", "message", "nm_len", "status", "all"]), label="rewrite")
        self._step("pause_and_rewrite", f"TX frame {j} to {to}" + (f", {len(first)} good bytes" if fresh else "")
                   + f", rewrite {what}")

        def go() -> None:
            if fresh:
                self.s.poke(p, off + NL_MMAP_HDRLEN, first)
                self.s.poke(p, off + NM_LEN_OFFSET, _U32.pack(len(first)))
                self.s.poke(p, off, _U32.pack(VALID))
            exp = self.s.exchange("sendmsg", p, payload=None, to=to, pause_after_validate=True)
            if "paused" not in exp:
                return
            self.ctx.paused_walks += 1
            self.s.check_memory(p, full=True)  # the frame as the kernel left it while it holds the message
            if what in ("message", "all"):
                self.s.poke(p, off + NL_MMAP_HDRLEN, data.draw(st.one_of(P.acked_noop(max_len=cap),
                                                                         P.datagram(max_len=cap)), label="new message"))
            if what in ("nm_len", "all"):
                self.s.poke(p, off + NM_LEN_OFFSET, _U32.pack(data.draw(st.sampled_from([0, 16, cap, cap + 1, 0xFFFF]),
                                                            label="new nm_len")))
            if what in ("status", "all"):
                self.s.poke(p, off, _U32.pack(data.draw(st.sampled_from([VALID, UNUSED, SKIP]), label="new status")))
            self.s.exchange("resume", None, token=exp["paused"])
            if to == "peer":  # what the peer got shows at once which bytes the walk acted on
                self.s.exchange("received", p)
        self._guard(data, go)

    def _tx_head_fillable(self, p: SockPair) -> bool:
        """The frame at the kernel's TX cursor is one the user may write a message into (UNUSED)
        or already holds one (VALID)."""
        m = self.ms(p)
        return m.tx is not None and m.statuses("tx")[m.spec_state["tx_head"]] in (UNUSED, VALID)

