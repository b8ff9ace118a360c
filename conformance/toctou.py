"""TOCTOU without a pause: a thread of the user rewrites a TX frame while the kernel walks it.

The state machine's ``pause_and_rewrite`` rule covers SUTs with ``pause_after_validate`` (the check
``toctou_pause``). This is the other half, ``toctou_race``, for SUTs whose memory the suite maps
(``shared_memory``): during each kick a thread flips one aligned word of the frame between a good
value and a bad one, so the kernel may copy either; whatever it copied, what it acts on must be what
it validated:

* to the kernel, the request's ``nlmsg_len`` flips between 16 (a NOOP with NLM_F_ACK: an ACK) and
  0xFFFF (malformed: dropped silently). Every ACK must be exactly the ACK of the good request
  (:func:`nlmmap.spec.netlink.build_ack`); an ACK echoing the malformed length means the kernel
  validated one copy and acted on bytes read again from shared memory;
* to the peer, ``nm_len`` flips between 16 and 0x7FFFFFFF: each kick returns 16 with the peer
  receiving exactly the good message, or EINVAL with the frame left VALID; anything else means
  ``nm_len`` was read more than once.

Outcomes depend on timing, so the check asserts only what holds for every interleaving and reports
how many kicks saw each value.
"""

from __future__ import annotations

import mmap as _mmap
import os
import struct
import threading
import time
from typing import Any

from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import (
    NL_MMAP_HDRLEN,
    NM_LEN_OFFSET,
    NM_STATUS_SIZE,
    MappingLayout,
    RingGeometry,
    RingRequest,
    Status,
)

from .report import Check
from .session import Session

__all__ = ["race_check", "RACE_KICKS"]

RACE_KICKS = 300
_U32 = struct.Struct("=I")


class _Flipper:
    """Flip the u32 at ``offset`` between two values until stopped (then leave ``good``)."""

    def __init__(self, mm: _mmap.mmap, offset: int, good: int, bad: int):
        self.mm, self.o = mm, offset
        self.good, self.bad = _U32.pack(good), _U32.pack(bad)
        self.stop = threading.Event()
        self.flips = 0
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        mm, o, a, b = self.mm, self.o, self.good, self.bad
        e = o + NM_LEN_OFFSET
        while not self.stop.is_set():  # unrolled so that both values are held about as long
            for _ in range(16):
                mm[o:e] = b
                mm[o:e] = a
                mm[o:e] = b
                mm[o:e] = a
                mm[o:e] = b
                mm[o:e] = a
                mm[o:e] = b
                mm[o:e] = a
            self.flips += 64

    def __enter__(self) -> _Flipper:
        self.t.start()
        while self.flips == 0 and self.t.is_alive():  # the writer is running before the kick is sent
            time.sleep(0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.t.join(5)
        self.mm[self.o:self.o + 4] = self.good


def race_check(session: Session, *, kicks: int = RACE_KICKS, progress: Any = None) -> Check:
    """Run the race against the session's SUT on a socket of its own (the model is not involved:
    the expectations are the spec's own functions)."""
    feats = session.features
    missing = [f for f in ("shared_memory", "tx_ring", "rx_ring") if f not in feats]
    if missing:
        return Check("toctou_race", "skipped", "SUT lacks " + ", ".join(missing))
    t = session.target
    ids = iter(range(10**9, 2 * 10**9))

    def ask(op: str, **args: Any) -> dict:
        return t.ask({"id": next(ids), "op": op, **args})

    page = session.page_size
    rx, tx = RingGeometry(page, 1, 256, page // 256), RingGeometry(page, 1, 1024, page // 1024)
    s = ask("socket")
    if not s.get("ok"):
        return Check("toctou_race", "fail", f"socket: {s}")
    sock, portid = s["sock"], s["portid"]
    try:
        for opt, g in (("NETLINK_RX_RING", rx), ("NETLINK_TX_RING", tx)):
            a = ask("setsockopt", sock=sock, option=opt, optval=RingRequest(*g.__dict__.values()).pack().hex())
            if not a.get("ok"):
                return Check("toctou_race", "fail", f"setsockopt {opt}: {a}")
        lay = MappingLayout(rx, tx)
        m = ask("mmap", sock=sock, length=lay.size, offset=0)
        if not m.get("ok") or not isinstance(m.get("path"), str):
            return Check("toctou_race", "skipped", f"mmap gave no path to map ({m})")
        fd = os.open(m["path"], os.O_RDWR)
        try:
            mm = _mmap.mmap(fd, lay.size)
        finally:
            os.close(fd)
        try:
            return _race(lambda op, **a: ask(op, sock=sock, **a), mm, lay, portid, kicks)
        finally:
            mm.close()
    finally:
        ask("close", sock=sock)


def _race(ask: Any, mm: _mmap.mmap, lay: MappingLayout, portid: int, kicks: int) -> Check:
    """``ask(op, **args)`` talks to the race's socket."""

    def kick(to: str) -> dict:
        return ask("sendmsg", payload=None, to=to)

    def received() -> Any:
        return ask("received").get("messages")

    good = nl.build_message(nl.NLMSG_NOOP, nl.NLM_F_REQUEST | nl.NLM_F_ACK, 7, 0)
    ack = nl.build_ack(good, portid, 0)
    rx, tx = lay.rx, lay.tx
    assert rx is not None and tx is not None
    seen = {"acked": 0, "dropped": 0, "peer_sent": 0, "peer_einval": 0}
    rxc = txc = 0
    flips = 0

    def fill(j: int, nm_len: int) -> int:
        o = lay.frame_offset("tx", j)
        mm[o + NL_MMAP_HDRLEN:o + NL_MMAP_HDRLEN + len(good)] = good
        mm[o + NM_LEN_OFFSET:o + NM_LEN_OFFSET + 4] = _U32.pack(nm_len)
        mm[o:o + NM_STATUS_SIZE] = _U32.pack(Status.VALID)
        return o

    for k in range(kicks):
        to_peer = k % 3 == 2
        o = fill(txc, len(good))
        with _Flipper(mm, o + (4 if to_peer else NL_MMAP_HDRLEN), len(good), 0x7FFFFFFF if to_peer else 0xFFFF) as f:
            r = kick("peer" if to_peer else "kernel")
        flips += f.flips
        status = _U32.unpack_from(mm, o)[0]
        if to_peer:
            if r.get("ok") and r.get("bytes") == len(good):
                got = received()
                if got != [good.hex()]:
                    return Check("toctou_race", "fail", f"kick {k} to the peer returned {len(good)} but the peer got "
                                                        f"{got}: nm_len was read more than once")
                seen["peer_sent"] += 1
            elif r.get("ok") is False and r.get("errno") == "EINVAL" and status == Status.VALID:
                seen["peer_einval"] += 1
                r2 = kick("peer")  # nm_len is good again now: the frame goes out
                if not (r2.get("ok") and r2.get("bytes") == len(good)) or received() != [good.hex()]:
                    return Check("toctou_race", "fail", f"kick {k}: after EINVAL the frame did not go out: {r2}")
            else:
                return Check("toctou_race", "fail", f"kick {k} to the peer with nm_len flipping 16/0x7fffffff: {r}, "
                                                    f"frame {Status(status).name if status < 5 else hex(status)}")
        else:
            if not (r.get("ok") and r.get("bytes") == len(good)):
                return Check("toctou_race", "fail", f"kick {k} to the kernel returned {r}, expected {len(good)} bytes")
            fo = lay.frame_offset("rx", rxc)
            hdr = bytes(mm[fo:fo + NL_MMAP_HDRLEN])
            st_, ln = _U32.unpack_from(hdr, 0)[0], _U32.unpack_from(hdr, 4)[0]
            if st_ == Status.VALID:
                body = bytes(mm[fo + NL_MMAP_HDRLEN:fo + NL_MMAP_HDRLEN + ln])
                if ln != len(ack) or body != ack:
                    return Check("toctou_race", "fail",
                                 f"kick {k}: the kernel answered a request it did not validate: ACK {body.hex()} "
                                 f"(nm_len {ln}); the only valid request was {good.hex()}, whose ACK is {ack.hex()}")
                seen["acked"] += 1
                mm[fo:fo + 4] = _U32.pack(Status.UNUSED)
                rxc = rx.next_index(rxc)
            elif st_ == Status.UNUSED:
                seen["dropped"] += 1
            else:
                return Check("toctou_race", "fail", f"kick {k}: RX frame {rxc} has status {st_}")
        if _U32.unpack_from(mm, o)[0] != Status.UNUSED:
            return Check("toctou_race", "fail", f"kick {k}: TX frame {txc} not UNUSED after the walk")
        txc = tx.next_index(txc)
    detail = (f"{kicks} kicks raced by a writer thread ({flips} flips): to the kernel {seen['acked']} acted on "
              f"the valid copy, {seen['dropped']} dropped the malformed one; to the peer {seen['peer_sent']} sent, "
              f"{seen['peer_einval']} EINVAL; never acted on bytes it had not validated")
    return Check("toctou_race", "pass", detail)

