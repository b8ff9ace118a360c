"""Where the kernel side's threads run (``--cpus``, ``--call-cpus``) and the wire's datagram reader.

``--call-cpus`` puts the thread that answers a socket's calls on the caller's CPUs (a kernel runs
a system call on the caller's CPU) and keeps service threads (the packet path) on ``--cpus``:
checked from ``/proc/PID/task/*/status``, the affinity Linux applies per thread.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nlmmap.impl import wire
from nlmmap.impl.client import RingSocket
from nlmmap.impl.server import KernelProcess


def _thread_cpus(pid: int) -> list[set[int]]:
    """The allowed CPUs of every thread of process ``pid``."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                cpus: set[int] = set()
                for part in line.split(":", 1)[1].strip().split(","):
                    a, _, b = part.partition("-")
                    cpus.update(range(int(a), int(b or a) + 1))
                out.append(cpus)
    return out


def test_calls_are_answered_on_the_callers_cpu_and_services_stay_on_theirs() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    call_cpu, service_cpu = allowed[0], allowed[-1]
    if call_cpu == service_cpu:
        pytest.fail("this test needs two CPUs (the machines this project runs on have two)")
    with KernelProcess(args=["--cpus", str(service_cpu), "--call-cpus", str(call_cpu)]) as kp:
        with RingSocket(kp.path) as s:
            # a queue service with nobody deciding: its producer thread stays (waiting for verdicts)
            s.service("queue", count=10_000, size=64, maxlen=4, wait=True)
            s.settle()
            cpus = _thread_cpus(kp.proc.pid)
            assert cpus.count({call_cpu}) == 1, cpus  # the socket's connection thread, no other
            assert cpus.count({service_cpu}) == len(cpus) - 1, cpus  # main thread and the producer
            assert len(cpus) >= 3, cpus


def test_without_call_cpus_every_thread_keeps_the_process_cpus() -> None:
    cpu = sorted(os.sched_getaffinity(0))[-1]
    with KernelProcess(args=["--cpus", str(cpu)]) as kp, RingSocket(kp.path) as s:
        s.service("queue", count=10_000, size=64, maxlen=4, wait=True)
        s.settle()
        assert all(c == {cpu} for c in _thread_cpus(kp.proc.pid))


@pytest.mark.parametrize("value, message", [("x", "--call-cpus 'x'"), ("4096", "CPUs allowed here")])
def test_a_bad_call_cpus_is_a_usage_error(value: str, message: str) -> None:
    r = subprocess.run([sys.executable, "-m", "nlmmap.impl.kernel", "--socket", "/tmp/nlmmap-unused.sock",
                        "--call-cpus", value], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_the_datagram_reader_returns_each_datagram_whole_with_its_descriptors() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    reader = wire.DatagramReader(b)
    try:
        big = bytes(range(256)) * 400  # 100 KiB: its pages are handed back afterwards
        for data in (b"x", big, b"after the big one"):
            a.send(data)
            assert reader.recv() == (data, [])
        r, w = os.pipe()
        socket.send_fds(a, [b"with a descriptor"], [r])
        data, fds = reader.recv()
        assert data == b"with a descriptor" and len(fds) == 1
        os.write(w, b"!")
        assert os.read(fds[0], 1) == b"!"  # the descriptor received is the pipe's read end
        for fd in (r, w, *fds):
            os.close(fd)
        a.close()
        assert reader.recv() == (b"", [])  # end of stream
    finally:
        reader.close()
        b.close()
