"""Differential check: the production implementation's adapter and the reference model's adapter
answer the same random nlmmap-adapter/1 sessions identically (errnos, bytes, statuses).

Each example opens one socket on both sides, configures rings, maps them, then runs random
operations: deliveries by the ring and copy paths, user writes of status words (release, SKIP,
garbage), TX frames filled and kicked to the kernel or the peer, recvmsg, poll, NO_ENOBUFS.
Answers are compared field by field except the free-text ``message`` and ``outcome`` (which a
kernel side may not know); a ``peek`` of the whole mapping after every step compares memory,
with the credentials words (nm_pid/uid/gid) compared as zero vs non-zero.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlmmap.spec.abi import NL_MMAP_HDRLEN, RingGeometry, RingRequest, mapping_layout
from nlmmap.spec.netlink import NLM_F_ACK, NLM_F_REQUEST, build_message


class Adapter:
    """An adapter program driven line by line."""

    def __init__(self, module: str):
        self.p = subprocess.Popen([sys.executable, "-m", module], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.n = 0

    def ask(self, **req):
        self.n += 1
        req["id"] = self.n
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        assert line, f"adapter {self.p.args} died"
        return json.loads(line)

    def close(self):
        try:
            self.ask(op="bye")
        finally:
            self.p.stdin.close()
            self.p.wait(10)


@pytest.fixture(scope="module")
def pair():
    a, b = Adapter("nlmmap.model.adapter"), Adapter("nlmmap.impl.adapter")
    yield a, b
    a.close()
    b.close()


def strip(ans: dict) -> dict:
    out = {k: v for k, v in ans.items() if k not in ("message", "outcome", "id", "path", "portid", "sock",
                                                      "implementation", "features")}
    if "revents" in out:
        out["revents"] = sorted(out["revents"])
    return out


def masked(data: bytes, frames) -> bytes:
    """Credentials words compared as zero / non-zero."""
    b = bytearray(data)
    for off in frames:
        for f in (12, 16, 20):
            v = struct.unpack_from("=I", b, off + f)[0]
            struct.pack_into("=I", b, off + f, 1 if v else 0)
    return bytes(b)


RX = RingRequest(4096, 1, 512, 8)
TX = RingRequest(4096, 1, 1024, 4)
ops = st.lists(st.one_of(
    st.tuples(st.just("deliver"), st.sampled_from(["ring", "copy"]), st.integers(0, 600), st.sampled_from([0, 0, 3])),
    st.tuples(st.just("status"), st.integers(0, 7), st.sampled_from([0, 0, 0, 4, 2, 1, 0xDEAD])),
    st.tuples(st.just("tx"), st.integers(0, 3), st.integers(0, 1100), st.sampled_from(["kernel", "peer"]),
              st.booleans()),
    st.tuples(st.just("recv"), st.sampled_from([0, 8, 4096])),
    st.tuples(st.just("poll")),
    st.tuples(st.just("received")),
    st.tuples(st.just("no_enobufs"), st.booleans()),
), min_size=1, max_size=25)


@settings(max_examples=100, deadline=None)
@given(steps=ops)
def test_impl_and_model_agree(pair, steps):
    a, b = pair
    lay = mapping_layout(RingGeometry(*RX.__dict__.values()), RingGeometry(*TX.__dict__.values()))
    frames = [f.offset for f in lay.frames()]
    socks = []
    for ad in (a, b):
        s = ad.ask(op="socket")
        assert s["ok"], s
        socks.append(s["sock"])

    def both(**req):
        ra = a.ask(**dict(req, sock=socks[0]) if "sock" in req else req)
        rb = b.ask(**dict(req, sock=socks[1]) if "sock" in req else req)
        assert strip(ra) == strip(rb), f"request {req}: model {ra}, impl {rb}"
        return ra

    both(op="setsockopt", sock=0, option="NETLINK_RX_RING", optval=RX.pack().hex())
    both(op="setsockopt", sock=0, option="NETLINK_TX_RING", optval=TX.pack().hex())
    both(op="mmap", sock=0, length=lay.size)
    for step in steps:
        kind = step[0]
        if kind == "deliver":
            _, path, size, group = step
            both(op="deliver", sock=0, path=path, payload=(bytes([size & 0xFF]) * size).hex(),
                 group=group if path == "copy" else 0)
        elif kind == "status":
            _, i, v = step
            both(op="poke", sock=0, offset=lay.frame_offset("rx", i), data=struct.pack("=I", v).hex())
        elif kind == "tx":
            _, i, size, to, ack = step
            off = lay.frame_offset("tx", i)
            st_now = both(op="peek", sock=0, offset=off, length=4)["data"]
            if st_now == "00000000":
                msg = build_message(0x1, NLM_F_REQUEST | (NLM_F_ACK if ack else 0), i, 0)
                body = (msg + bytes(size))[: min(size, 1024 - NL_MMAP_HDRLEN)]
                both(op="poke", sock=0, offset=off + 24, data=body.hex())
                both(op="poke", sock=0, offset=off + 4, data=struct.pack("=I", size).hex())
                both(op="poke", sock=0, offset=off, data="02000000")
            both(op="sendmsg", sock=0, payload=None, to=to)
        elif kind == "recv":
            both(op="recvmsg", sock=0, bufsize=step[1])
        elif kind == "poll":
            both(op="poll", sock=0)
        elif kind == "received":
            both(op="received", sock=0)
        elif kind == "no_enobufs":
            both(op="setsockopt", sock=0, option="NETLINK_NO_ENOBUFS", optval=struct.pack("=I", step[1]).hex())
        ma = a.ask(op="peek", sock=socks[0], offset=0, length=lay.size)
        mb = b.ask(op="peek", sock=socks[1], offset=0, length=lay.size)
        assert masked(bytes.fromhex(ma["data"]), frames) == masked(bytes.fromhex(mb["data"]), frames), \
            f"memory differs after {step}"
    both(op="close", sock=0)
