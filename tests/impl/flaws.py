"""Known-bad kernel sides for the implementation's own tests: small subclasses of ``KSock`` that
override one hook each (never flags in the production paths). The kernel process loads them with
``--socket-class <this file>:<Class>`` (the ``flaw`` fixture of conftest.py)."""

from __future__ import annotations

from nlmmap.impl.ksock import KSock
from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import NL_MMAP_HDRLEN


class ValidateInPlace(KSock):
    """The historical 3.10 TOCTOU flaw (kernel-protocol.md 12.1): the walk validates the frame's
    messages, then acts on their bytes read again from the shared frame (double fetch)."""

    def tx_deliver(self, data: bytes, off: int, n: int, to: str) -> int:
        if to == "peer":
            return self.from_user(bytes(self.mm[off + NL_MMAP_HDRLEN:off + NL_MMAP_HDRLEN + n]), to)
        pos = 0
        for hdr, raw in nl.split_messages(data):  # validated at copy time
            start = off + NL_MMAP_HDRLEN + pos
            now = bytes(self.mm[start:start + len(raw)])  # ... and used after a re-read
            reply = self.answer(nl.NlMsgHdr.unpack(now), now)
            if reply.ack or reply.error:
                self.kernel_send(nl.build_ack(now, self.portid, reply.error, cap_ack=self.cap_ack), is_ack=True)
            pos += nl.nlmsg_align(hdr.len)
        return n


class ZeroCopyTx(KSock):
    """The walk acts on the shared frame itself instead of a private copy (no copy at all)."""

    def tx_take(self, off: int, n: int) -> memoryview:
        return memoryview(self.mm)[off + NL_MMAP_HDRLEN:off + NL_MMAP_HDRLEN + n]


class NoWakeup(KSock):
    """Never kicks a sleeping reader (a lost wake-up on every publish)."""

    def wake_user(self) -> None:
        pass
