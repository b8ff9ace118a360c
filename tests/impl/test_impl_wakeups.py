"""The wake-up handshake (flag, re-check, sleep; kick only a sleeper), both directions, and the
lost-wake-up count the other tests rely on: it must be 0 with a correct peer however late the peer
is, and count a wake-up that a peer decided not to send. Each test puts the sleeper to sleep
first (``settle``, ``sleeps``) and only then makes the awaited frame ready, so nothing depends on
the machine's speed: a short bounded sleep (0.2 s) expires whenever the kick is missing.
"""

from __future__ import annotations

import threading
import time

import pytest

from nlmmap.impl import wire
from nlmmap.impl.client import RingSocket
from nlmmap.impl.kernel import KernelProcess
from nlmmap.spec.abi import RingRequest, Status

RX4 = RingRequest(4096, 1, 1024, 4)


class _Reader(threading.Thread):
    """``messages(limit=1)`` in a thread of its own (its exception re-raised by ``result``)."""

    def __init__(self, s: RingSocket):
        super().__init__(daemon=True)
        self.s, self.got, self.error = s, [], None

    def run(self) -> None:
        try:
            self.got = [wire.check_seq_message(m) for m in self.s.messages(limit=1)]
        except BaseException as e:  # re-raised in the test's thread
            self.error = e

    def result(self) -> list[int]:
        self.join()
        if self.error is not None:
            raise self.error
        return self.got


def _fill_then_sleep_reader(kernel_path: str) -> RingSocket:
    """A socket whose stream producer filled the 4 frames and waits for a fifth; the user takes
    the 4 messages and frees the frames WITHOUT telling the kernel (raw stores), so the producer
    keeps sleeping until the test sends the NOTE itself."""
    s = RingSocket(kernel_path, poll_timeout=0.2)
    s.set_rings(rx=RX4)
    s.mmap()
    s.service("stream", count=5, size=64)
    s.settle()  # the producer waits for a free frame
    for i in range(4):
        assert s.status("rx", i) == Status.VALID
        assert wire.check_seq_message(s.payload("rx", i).tobytes()) == i
        s.at.store_sc(s.frame_offset("rx", i), Status.UNUSED)
    return s


def _kernel_to_user(kernel_path: str) -> RingSocket:
    s = _fill_then_sleep_reader(kernel_path)
    reader = _Reader(s)
    reader.start()
    while s.sleeps == 0:  # the reader has set its flag, re-checked, and is going into poll()
        time.sleep(0.001)
    s._note("released")  # now the producer wakes and publishes message 4 into frame 0
    assert reader.result() == [4]
    return s


def test_kernel_kicks_a_sleeping_reader():
    with KernelProcess(args=["--wait-timeout", "60"]) as k:
        s = _kernel_to_user(k.path)
        with s:
            assert s.lost_wakeups == 0
            s.settle()
            assert s.stats()["lost_wakeups"] == 0


def test_a_kernel_that_never_kicks_is_counted(flaw):
    """The check is able to fail: against a kernel side that never kicks, the reader's bounded
    sleep expires with the frame ready and its flag unclaimed: one lost wake-up."""
    with KernelProcess(args=["--wait-timeout", "60"], socket_class=flaw("NoWakeup")) as k:
        with _kernel_to_user(k.path) as s:
            assert s.poll_timeouts >= 1 and s.lost_wakeups == 1


class _ForgetfulUser(RingSocket):
    """A user that hands frames back but never looks at the kernel's wait flag, so never NOTEs
    it (it still counts its hand-backs, as a correct user does)."""

    def _give_back(self, done: list[int]) -> None:
        seq = self._rel_seq = self._rel_seq + 1
        self.ctl.store64(wire.CTL_REL_BEGUN, seq)
        for off in done:
            self.at.store_sc(off, Status.UNUSED)
        self.ctl.store64(wire.CTL_REL_DECIDED, seq)


@pytest.mark.parametrize("user, lost", [(RingSocket, 0), (_ForgetfulUser, 1)])
def test_user_notes_a_waiting_kernel(user, lost):
    """User -> kernel: the producer sleeps (flag set) for a free frame; the user frees frames.
    A correct user's NOTE wakes it (0 lost, however late); a user that forgets leaves the
    producer's bounded sleep (0.2 s) to expire with space there and the flag unclaimed (1 lost)."""
    with KernelProcess(args=["--wait-timeout", "0.2"]) as k, user(k.path) as s:
        s.set_rings(rx=RX4)
        s.mmap()
        s.service("stream", count=5, size=64)
        s.settle()  # the producer waits for a free frame
        assert [wire.check_seq_message(m) for m in s.messages(limit=5)] == list(range(5))
        s.settle()
        st = s.stats()
        assert st["stream_done"] and st["lost_wakeups"] == lost
