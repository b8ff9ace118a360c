"""Witnesses: for each mutant of the zoo, a short sequence of adapter requests on which it deviates
from the reference model (Linux 4.5) while a correct kernel side does not.

A witness shows that a mutant is wrong by the fact sheet *and* observable at the adapter boundary,
and names the sequence the suite's search must be able to reach (for a mutant that survives a
run, it is the precise report of the gap). It is played through a conformance
:class:`~nlmmap.conformance.session.Session`, so every answer and, after the last step, every
byte of the mapping are compared exactly as in a suite run; the recorded exchanges are a
transcript ``nlmmap conform --replay`` can run again.

:data:`NO_WITNESS` names the mutants no sequential witness can show, with the reason (a race, or a
feature no adapter has).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nlmmap.spec import family
from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import NL_MMAP_HDRLEN, RingRequest, Status

__all__ = ["WITNESSES", "NO_WITNESS", "WitnessResult", "play_witness"]

UNUSED, RESERVED, VALID, COPY, SKIP = (int(s) for s in Status)
_U32 = struct.Struct("=I")
PAGE = 4096
_MSG = nl.build_message(0x1234, 0, 1, 0, b"abcd")  # a kernel subsystem's (or the peer's) message
_NOOP_ACK = nl.build_message(nl.NLMSG_NOOP, nl.NLM_F_REQUEST | nl.NLM_F_ACK, 7, 0)  # 16 bytes, ACKed
_NOOP_ACK_2 = nl.build_message(nl.NLMSG_NOOP, nl.NLM_F_REQUEST | nl.NLM_F_ACK, 8, 0, b"zzzz")


class _User:
    """The witness's user: one socket of a session, with a few verbs."""

    def __init__(self, session: Any):
        self.s = session
        self.p = session.open_socket()

    def rings(self, rx: tuple[int, int, int, int] | None = None, tx: tuple[int, int, int, int] | None = None,
              *, mmap: bool = True) -> None:
        size = 0
        for opt, g in (("NETLINK_RX_RING", rx), ("NETLINK_TX_RING", tx)):
            if g is not None:
                self.setsockopt(opt, RingRequest(*g).pack())
                size += g[0] * g[1]
        if mmap:
            exp = self.s.exchange("mmap", self.p, length=size, offset=0)
            self.s.after_mmap(self.p, exp, self.s.last_got.get("path"))

    def setsockopt(self, option: str, optval: bytes) -> dict:
        return self.s.exchange("setsockopt", self.p, option=option, optval=optval.hex())

    def off(self, ring: str, i: int) -> int:
        return self.s.msock(self.p).layout.frame_offset(ring, i)

    def status(self, ring: str, i: int, value: int) -> None:
        self.s.poke(self.p, self.off(ring, i), _U32.pack(value))

    def deliver(self, path: str = "ring", n: int = 1, payload: bytes = _MSG, group: int = 0) -> None:
        for _ in range(n):
            self.s.exchange("deliver", self.p, payload=payload.hex(), path=path, group=group)

    def fill_tx(self, i: int, message: bytes, nm_len: int | None = None, status: int = VALID) -> None:
        o = self.off("tx", i)
        self.s.poke(self.p, o + NL_MMAP_HDRLEN, message)
        self.s.poke(self.p, o + 4, _U32.pack(len(message) if nm_len is None else nm_len))
        self.s.poke(self.p, o, _U32.pack(status))

    def kick(self, to: str = "peer", **kw: Any) -> dict:
        return self.s.exchange("sendmsg", self.p, payload=None, to=to, **kw)

    def send(self, payload: bytes, to: str = "kernel") -> dict:
        return self.s.exchange("sendmsg", self.p, payload=payload.hex(), to=to)

    def recvmsg(self) -> dict:
        return self.s.exchange("recvmsg", self.p, bufsize=4096, dontwait=True)

    def poll(self) -> dict:
        return self.s.exchange("poll", self.p)

    def full_ring(self, frames: int = 4) -> None:
        """An RX ring of ``frames`` 1024-byte frames, every frame VALID (the cursor back at 0)."""
        self.rings(rx=(PAGE, 1, 1024, frames))
        self.deliver(n=frames)


_RX4 = (PAGE, 1, 1024, 4)
_TX4 = (PAGE, 1, 1024, 4)


def _skip_at_cursor(u: _User) -> None:
    """Every frame delivered, frames 1-3 released, frame 0 (at the cursor) kept as SKIP."""
    u.full_ring()
    for i in (1, 2, 3):
        u.status("rx", i, UNUSED)
    u.status("rx", 0, SKIP)


def _w_skip_not_stepped(u: _User) -> None:
    _skip_at_cursor(u)
    u.deliver()  # 4.5: frame 1 (the cursor steps over the SKIP frame); the mutant: dropped


def _w_copy_steps_over_skip(u: _User) -> None:
    _skip_at_cursor(u)
    u.deliver(path="copy")  # 4.5: dropped (the COPY path looks at the cursor frame only)


def _w_non_status_free(u: _User) -> None:
    u.rings(rx=_RX4)
    u.status("rx", 0, 5)
    u.deliver()  # 4.5: dropped with an overrun (frame 0 is not UNUSED)


def _w_wrap_one_early(u: _User) -> None:
    u.rings(rx=(PAGE, 1, 2048, 2))
    u.deliver(n=2)  # 4.5: frames 0 and 1; the mutant: frame 0, then dropped


def _w_big_truncated(u: _User) -> None:
    u.rings(rx=(PAGE, 1, 256, 16))
    u.deliver(payload=nl.build_message(0x1234, 0, 1, 0, bytes(300)))  # 4.5: COPY (324 > 232 bytes)
    u.recvmsg()


def _w_enobufs_lost(u: _User) -> None:
    u.full_ring()
    u.deliver()  # ring full: an overrun
    u.poll()  # 4.5: POLLERR


def _w_enobufs_every_drop(u: _User) -> None:
    u.rings(rx=_RX4)
    u.deliver(path="copy", n=4)  # four COPY frames, four queued messages
    u.deliver()  # ring full: overrun, CONGESTED, ENOBUFS
    u.recvmsg()  # ENOBUFS
    u.recvmsg()  # a message; three left, still congested
    u.deliver()  # another drop while congested: counted only
    u.poll()  # 4.5: no POLLERR


def _w_no_enobufs_ignored(u: _User) -> None:
    u.rings(rx=_RX4)
    u.setsockopt("NETLINK_NO_ENOBUFS", _U32.pack(1))
    u.deliver(n=5)
    u.poll()  # 4.5: the drop was silent, no POLLERR


def _w_ack_loss_silent(u: _User) -> None:
    u.rings(rx=_RX4)
    u.setsockopt("NETLINK_NO_ENOBUFS", _U32.pack(1))
    u.deliver(n=4)
    u.send(_NOOP_ACK)  # its ACK is lost to the full ring
    u.poll()  # 4.5: POLLERR even with NO_ENOBUFS


def _w_congestion_kept(u: _User) -> None:
    u.rings(rx=_RX4)
    u.deliver(path="copy", n=2)
    u.deliver(n=3)  # two frames, then an overrun: CONGESTED
    for _ in range(3):
        u.recvmsg()  # ENOBUFS, then both messages: the queue is empty, CONGESTED clears
    for i in range(4):
        u.status("rx", i, UNUSED)
    u.deliver(path="copy")  # 4.5: accepted


def _w_poll_misses_copy(u: _User) -> None:
    u.rings(rx=_RX4)
    u.deliver(path="copy")
    u.poll()  # 4.5: POLLIN (a queued message)


def _w_pollout(u: _User) -> None:
    u.rings(tx=(PAGE, 1, 2048, 2))
    u.fill_tx(0, _NOOP_ACK)
    u.poll()  # 4.5: POLLOUT (datagram_poll)


def _w_rewrite_while_paused(u: _User) -> None:
    u.rings(rx=_RX4, tx=_TX4)
    u.fill_tx(0, _NOOP_ACK)
    exp = u.kick("kernel", pause_after_validate=True)
    o = u.off("tx", 0)
    u.s.poke(u.p, o + NL_MMAP_HDRLEN, nl.build_message(nl.NLMSG_NOOP, nl.NLM_F_REQUEST | nl.NLM_F_ACK, 99, 0))
    if "paused" in exp:
        u.s.exchange("resume", None, token=exp["paused"])  # 4.5: the ACK of seq 7, what was validated


def _w_tx_sends_non_valid(u: _User) -> None:
    u.rings(tx=_TX4)
    u.fill_tx(0, _NOOP_ACK, status=SKIP)
    u.kick()  # 4.5: 0 (the cursor frame is not VALID)


def _oversize_then_good(u: _User) -> None:
    u.rings(tx=_TX4)
    u.fill_tx(0, _NOOP_ACK, nm_len=5000)
    u.fill_tx(1, _NOOP_ACK)
    u.kick()  # EINVAL


def _w_head_on_einval(u: _User) -> None:
    _oversize_then_good(u)
    u.kick()  # 4.5: EINVAL again (the cursor stays on the bad frame)


def _w_kick_last_frame(u: _User) -> None:
    u.rings(tx=_TX4)
    u.fill_tx(0, _NOOP_ACK)
    u.fill_tx(1, _NOOP_ACK_2)
    u.kick()  # 4.5: 16 + 20 bytes


def _w_kick_keeps_count(u: _User) -> None:
    u.rings(tx=_TX4)
    u.fill_tx(0, _NOOP_ACK)
    u.fill_tx(1, _NOOP_ACK, nm_len=5000)
    u.kick()  # 4.5: EINVAL (the 16 bytes sent are discarded)


def _w_count_errno(u: _User) -> None:
    u.setsockopt("NETLINK_RX_RING", RingRequest(PAGE, 1, 1024, 5).pack())  # 4.5: EINVAL


def _w_busy_order(u: _User) -> None:
    u.rings(rx=_RX4)
    u.setsockopt("NETLINK_RX_RING", RingRequest(PAGE, 1, 20, 4).pack())  # 4.5: EBUSY (mapped)


def _w_teardown_sizes(u: _User) -> None:
    u.setsockopt("NETLINK_RX_RING", RingRequest(PAGE + 7, 0, 17, 0).pack())  # 4.5: accepted


def _w_keeps_queue(u: _User) -> None:
    u.rings(rx=_RX4, mmap=False)
    u.deliver(path="copy", n=2)
    u.setsockopt("NETLINK_RX_RING", RingRequest(0, 0, 0, 0).pack())  # purges the queue
    u.recvmsg()  # 4.5: EAGAIN


def _w_ack_without_flag(u: _User) -> None:
    u.rings(rx=_RX4)
    u.send(nl.build_message(18, nl.NLM_F_REQUEST, 3, 0))  # a GET without a payload byte: ignored, no ACK


def _w_error_ack_capped(u: _User) -> None:
    u.rings(rx=_RX4)
    u.send(nl.build_message(nl.RTM_MAX + 1, nl.NLM_F_REQUEST, 3, 0, b"wxyz"))  # 4.5: 40-byte error ACK


def _w_dump_not_continued(u: _User) -> None:
    u.rings(rx=(2 * PAGE, 1, PAGE, 2))  # frames that hold an NLMSG_GOODSIZE dump skb
    u.send(family.dump_request(100, 100, seq=5))  # the first skb in frame 0
    u.poll()  # 4.5: dump_space() holds, poll continues the dump into frame 1


def _w_rx_plain(u: _User) -> None:
    u.rings(rx=_RX4)
    u.deliver()  # a ring message in frame 0: payload, nm_len, pid 0


def _w_group(u: _User) -> None:
    u.rings(rx=_RX4)
    u.deliver(path="copy", group=3)  # 4.5: COPY frame with nm_group 3


#: Manifest name -> the witness (the user's steps; the session compares every answer and the memory).
WITNESSES: dict[str, Callable[[_User], None]] = {
    "rx_valid_before_payload": _w_rx_plain,
    "rx_non_status_word_is_free": _w_non_status_free,
    "rx_wrap_one_early": _w_wrap_one_early,
    "rx_skip_not_stepped_over": _w_skip_not_stepped,
    "rx_copy_path_steps_over_skip": _w_copy_steps_over_skip,
    "rx_big_message_truncated": _w_big_truncated,
    "rx_group_not_written": _w_group,
    "rx_kernel_message_with_pid": _w_rx_plain,
    "overrun_enobufs_lost": _w_enobufs_lost,
    "overrun_enobufs_every_drop": _w_enobufs_every_drop,
    "overrun_no_enobufs_ignored": _w_no_enobufs_ignored,
    "overrun_ack_loss_silent": _w_ack_loss_silent,
    "overrun_congestion_kept_after_recvmsg": _w_congestion_kept,
    "poll_misses_queued_copy": _w_poll_misses_copy,
    "poll_out_only_when_tx_free": _w_pollout,
    "tx_validate_in_place": _w_rewrite_while_paused,
    "tx_walk_on_shared_frame": _w_rewrite_while_paused,
    "tx_sends_any_non_unused": _w_tx_sends_non_valid,
    "tx_head_advanced_on_einval": _w_head_on_einval,
    "tx_oversize_frame_consumed": _oversize_then_good,
    "tx_kick_returns_last_frame": _w_kick_last_frame,
    "tx_kick_keeps_count_on_error": _w_kick_keeps_count,
    "setup_frame_count_errno_enomem": _w_count_errno,
    "setup_geometry_checked_before_busy": _w_busy_order,
    "setup_teardown_checks_sizes": _w_teardown_sizes,
    "setup_ring_change_keeps_queue": _w_keeps_queue,
    "family_ack_without_ack_flag": _w_ack_without_flag,
    "family_error_ack_always_capped": _w_error_ack_capped,
    "family_dump_not_continued": _w_dump_not_continued,
}

#: Manifest name -> why no sequential witness can show the mutant.
NO_WITNESS: dict[str, str] = {
    "tx_nm_len_reread": "the two reads of nm_len are in one step of the walk, before the pause: only a writer "
                        "racing the walk (the toctou_race check) changes nm_len between them",
    "family_batch_verdict_covers_unseen": "nlmmap-adapter/1 has no operation that starts the queue service, so "
                                          "no adapter can show a batch verdict",
}


@dataclass
class WitnessResult:
    """What a witness saw: the first deviation (empty: none), and the exchanges as transcript lines."""

    name: str
    deviations: list[str] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)

    @property
    def deviated(self) -> bool:
        return bool(self.deviations)


def play_witness(name: str, target: Any) -> WitnessResult:
    """Play the witness of mutant ``name`` against ``target`` (a conformance Target; left open)."""
    from nlmmap.conformance.session import Mismatch, Session

    play = WITNESSES[name]
    s = Session(target)
    s.hello()
    out = WitnessResult(name)
    try:
        u = _User(s)
        play(u)
        s.check_memory(u.p, full=True)
    except Mismatch as e:
        out.deviations = [str(d) for d in e.deviations]
    finally:
        out.transcript = list(s.rec.lines)
        s.close_all()
    return out
