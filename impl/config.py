"""Parameters of the kernel side (one frozen record, passed to every socket)."""

from __future__ import annotations

from dataclasses import dataclass

from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import DEFAULT_PAGE_SIZE

__all__ = ["KernelConfig"]


@dataclass(frozen=True)
class KernelConfig:
    """Parameters of the kernel side.

    ``wait_timeout`` bounds a producer's sleep while it waits for free frames (a defence against a
    lost wake-up, counted in ``wait_timeouts``; a wake-up it proves lost is ``lost_wakeups``);
    ``wait_spin`` is how many free-frame checks (``has_space``, the spec's ``choose_alloc``: about
    1.5 us each) a waiting producer makes before it sets its flag and sleeps (a sleep costs a NOTE
    round trip and a thread wake-up, far longer than a reader's run). ``settle_timeout`` bounds the ``settle`` and
    ``retired`` calls (an answer of ETIMEDOUT, never a hang).
    """

    page_size: int = DEFAULT_PAGE_SIZE
    atomics: str = "auto"  # atomics backend (nlmmap.impl.atomics)
    wait_timeout: float = 1.0
    wait_spin: int = 64
    send_timeout: float = 10.0  # a user that does not read its socket for this long loses messages
    memory_limit: int = 64 << 20  # bytes per ring (else ENOMEM)
    sndbuf: int = nl.DEFAULT_SNDBUF  # plain sends longer than sndbuf - 32 fail with EMSGSIZE
    peer_pid: int = 4242  # nm_pid of messages from the user-space peer
    tgid: int = 1  # the users' process: sockets autobind to it first (family.autobind_portid; the 4.5 agent's pid)
    settle_timeout: float = 60.0
    #: ``sys.setswitchinterval`` of the kernel-side process (``main``): how long a service thread
    #: running Python may keep the GIL from the connection thread that answers the user's calls
    #: (verdicts, kicks, NOTEs). CPython's default, 5 ms, would stall every call made while a
    #: service runs; a kernel processes a sendmsg at once, in the caller's context.
    switch_interval: float = 0.0002
    #: CPUs of the threads that answer the user's calls (sendmsg, poll, setsockopt: the syscall
    #: context, which a kernel runs on the *caller's* CPU); service threads (the packet path, a
    #: kernel's softirq on other CPUs) keep the process's CPUs. None: every thread on the process's
    #: CPUs. A benchmark placement (``nlmmap bench``): a call answered on another CPU costs two
    #: cross-CPU wake-ups that a kernel's sendmsg never pays.
    call_cpus: tuple[int, ...] | None = None
