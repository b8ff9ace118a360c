"""setsockopt(NETLINK_RX/TX_RING) and mmap answer exactly as netlink_set_ring / netlink_mmap:
the same errno as the spec's rules, in the kernel's order (optlen, mapped, exists, geometry)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlmmap.impl.client import RingSocket
from nlmmap.impl.kernel import KernelProcess
from nlmmap.spec.abi import NETLINK_RX_RING, NETLINK_TX_RING, U32_MAX, RingRequest, check_ring_geometry
from nlmmap.spec.errors import NetlinkError


@pytest.fixture(scope="module")
def kernel():
    with KernelProcess() as k:
        yield k


def _errno(fn) -> str | None:
    try:
        fn()
    except NetlinkError as e:
        return e.errno
    return None


# u32 values, with the edges of the signed block_size check (page multiples just above 2**31 pass every
# other rule) drawn as often as the small ones
_u32 = st.sampled_from([0, 1, 4, 24, 25, 28, 2048, 4095, 4096, 8192, 1 << 31, (1 << 31) + 4096, U32_MAX - 4095,
                        U32_MAX]) | st.integers(0, U32_MAX)


@settings(max_examples=150)
@given(req=st.builds(RingRequest, _u32, st.integers(0, 8) | _u32, _u32, st.integers(0, 64) | _u32),
       tx=st.booleans())
def test_ring_request_errno_matches_the_spec(kernel, req, tx):
    want = _errno(lambda: check_ring_geometry(req))
    if want is None and not req.is_teardown and req.block_size * req.block_nr > 64 << 20:
        want = "ENOMEM"
    with RingSocket(kernel.path) as s:
        got = _errno(lambda: s.setsockopt(NETLINK_TX_RING if tx else NETLINK_RX_RING, req.pack()))
    assert got == want, (req, tx)


def test_kernel_order_of_checks(kernel):
    good = RingRequest(4096, 1, 2048, 2)
    bad = RingRequest(4095, 1, 2048, 2)
    with RingSocket(kernel.path) as s:
        assert _errno(lambda: s.setsockopt(NETLINK_RX_RING, good.pack()[:15])) == "EINVAL"  # optlen first
        assert _errno(lambda: s.setsockopt(NETLINK_RX_RING, good.pack() + b"junk")) is None  # longer is fine
        assert _errno(lambda: s.setsockopt(NETLINK_RX_RING, good.pack())) == "EBUSY"  # exists
        assert _errno(lambda: s.setsockopt(NETLINK_RX_RING, bad.pack())) == "EBUSY"  # before geometry
        assert _errno(lambda: s.mmap(8192)) == "EINVAL"
        assert _errno(lambda: s.mmap(4096, 4096)) == "EINVAL"
        s.mmap()
        assert _errno(lambda: s.setsockopt(NETLINK_TX_RING, bad.pack())) == "EBUSY"  # mapped before all
        assert _errno(lambda: s.setsockopt(NETLINK_RX_RING, RingRequest(0, 0, 0, 0).pack())) == "EBUSY"
        s.munmap()
        assert _errno(lambda: s.setsockopt(NETLINK_RX_RING, RingRequest(7, 0, 3, 0).pack())) is None  # tear-down
        assert _errno(lambda: s.setsockopt(NETLINK_RX_RING, good.pack())) is None
