"""Sendmsg posted without waiting (``RingSocket.sendmsg(msg, wait=False)``): the caller goes on at
once, and no later observation of the socket can tell it from a sendmsg that waited (its ACK is
there, its failure raised, naming itself). The kernel side here takes 0.2 s per message
(``flaws.SlowInput``), so a look that did not wait for the post would see nothing yet."""

from __future__ import annotations

import pytest

from nlmmap.impl import wire
from nlmmap.impl.bench.queue import queue_run
from nlmmap.impl.client import RingSocket
from nlmmap.impl.kernel import KernelProcess
from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import RingRequest, Status
from nlmmap.spec.errors import NetlinkError

_ACKED = nl.build_message(0x10, nl.NLM_F_REQUEST | nl.NLM_F_ACK, 7, 0, b"\0" * 4)
_RX = RingRequest(4096, 4, 2048, 8)


def _ack_seq(msg: bytes | memoryview) -> int:
    """The sequence number of an ACK (the request's, echoed)."""
    hdr = nl.NlMsgHdr.unpack(bytes(msg))
    assert hdr.type == nl.NLMSG_ERROR, hdr
    return hdr.seq


def _acked(seq: int) -> bytes:
    return nl.build_message(0x10, nl.NLM_F_REQUEST | nl.NLM_F_ACK, seq, 0, b"\0" * 4)


@pytest.fixture
def slow(flaw):
    with KernelProcess(socket_class=flaw("SlowInput")) as k:
        yield k


def test_a_posted_sendmsg_returns_its_length_and_its_ack_is_there_for_the_next_recvmsg(slow):
    with RingSocket(slow.path) as s:
        assert s.sendmsg(_ACKED, wait=False) == len(_ACKED)
        data, _ = s.recvmsg()  # dontwait: the kernel's ACK is queued before sendmsg returns
        assert _ack_seq(data) == 7


def test_the_ring_reader_takes_the_posts_before_it_waits(slow):
    with RingSocket(slow.path, post_batch=8) as s:  # 3 posts stay below the batch: sent before the wait
        s.set_rings(rx=_RX)
        s.mmap()
        for seq in (1, 2, 3):
            s.sendmsg(_acked(seq), wait=False)
        got = [_ack_seq(m) for m in s.messages(timeout=0.0, limit=3)]
        assert got == [1, 2, 3]


def test_a_frame_read_after_a_post_sees_its_effect(slow):
    with RingSocket(slow.path) as s:
        s.set_rings(rx=_RX)
        s.mmap()
        s.sendmsg(_ACKED, wait=False)
        assert s.status("rx", 0) == Status.VALID


def test_a_failed_post_raises_at_the_next_call_naming_itself_then_the_socket_serves_on(slow):
    with RingSocket(slow.path) as s:
        s.sendmsg(b"x" * (nl.DEFAULT_SNDBUF + 1), wait=False)  # EMSGSIZE in the kernel's sendmsg
        with pytest.raises(NetlinkError) as e:
            s.stats()
        assert e.value.errno == "EMSGSIZE" and "posted" in e.value.message
        assert s.stats()["portid"] == s.portid


@pytest.mark.parametrize("look", ["status", "header", "recvmsg", "send", "messages"])
def test_each_failed_post_raises_at_a_look_of_its_own(slow, look):
    """Two posts fail: the first raises at the first look, the second at the next look, whichever
    look it is (frame reads, recvmsg and the TX ring as well as calls), not at some later call."""
    with RingSocket(slow.path, post_batch=2) as s:
        s.set_rings(rx=_RX, tx=_RX)
        s.mmap()
        for _ in range(2):
            s.sendmsg(b"x" * (nl.DEFAULT_SNDBUF + 1), wait=False)  # EMSGSIZE, twice
        looks = {"status": lambda: s.status("rx", 0), "header": lambda: s.header("rx", 0),
                 "recvmsg": lambda: s.recvmsg(), "send": lambda: s.send(_ACKED),
                 "messages": lambda: list(s.messages(timeout=0.0, limit=1))}
        for _ in range(2):
            with pytest.raises(NetlinkError) as e:
                looks[look]()
            assert e.value.errno == "EMSGSIZE" and "posted" in e.value.message
        assert s.stats()["portid"] == s.portid


def test_a_failed_post_not_looked_at_is_raised_by_close(slow):
    s = RingSocket(slow.path)
    s.sendmsg(b"x" * (nl.DEFAULT_SNDBUF + 1), wait=False)
    with pytest.raises(NetlinkError, match="posted"):
        s.close()
    assert s.closed


@pytest.mark.parametrize("kw", [{"payload": None}, {"payload": _ACKED, "to": "peer"},
                                {"payload": None, "pause_after_validate": True}])
def test_what_cannot_be_posted_is_refused(kw):
    with KernelProcess() as k, RingSocket(k.path) as s:
        payload = kw.pop("payload")
        with pytest.raises(NetlinkError) as e:
            s.sendmsg(payload, wait=False, **kw)
        assert e.value.errno == "EINVAL"


@pytest.mark.parametrize("blob,says", [(b"\x02\x00\x00\x00\xff\xff", "does not hold"),  # 2 sends, a bad length
                                       (b"\x02\x00", "without its count")])
def test_a_malformed_post_is_reported_and_the_kernel_side_serves_on(blob, says):
    with KernelProcess() as k, RingSocket(k.path) as s:
        s.sock.send(wire.encode(wire.POST, "sendmsg", None, blob))
        s.stats()  # the report arrives with this call's answer; raised at the next look
        with pytest.raises(NetlinkError, match=says):
            s.sync()
        assert s.stats()["portid"] == s.portid


@pytest.mark.parametrize("transport", ["copy", "ring"])
@pytest.mark.parametrize("verdict", ["posted-1", "posted-1x16"])
def test_the_queue_service_decides_every_packet_with_posted_verdicts(transport, verdict):
    """One posted verdict per packet (sent at once, or 16 to a datagram): every packet decided, no
    error ACK, nothing stuck (the queue's producers wait for those verdicts)."""
    with KernelProcess() as k:
        sample = queue_run(k.path, n=3000, payload=1500, transport=transport, verdict=verdict, lock="mainline")
    assert sample.messages == 3000 and sample.seq_errors == 0, sample
    assert sample.extra["error_acks"] == 0 and sample.extra["verdict_msgs"] == 3000
