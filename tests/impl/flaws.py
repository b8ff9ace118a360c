"""Known-bad kernel sides for the implementation's own tests, loaded by the kernel process with
``--socket-class <this file>:<Class>`` (the ``flaw`` fixture of conftest.py). The protocol flaws
live in the installed mutant zoo (:mod:`nlmmap.conformance.zoo`, where the kill table finds them);
this file re-exports the ones the tests use and keeps the implementation's private flaws."""

from __future__ import annotations

import time

from nlmmap.conformance.zoo.tx import ValidateInPlace, ZeroCopyTx
from nlmmap.impl.ksock import KSock

__all__ = ["ValidateInPlace", "ZeroCopyTx", "NoWakeup", "SlowInput"]


class NoWakeup(KSock):
    """Never kicks a sleeping reader (a lost wake-up on every publish). Not a protocol flaw (wake-ups
    are this implementation's own handshake, invisible at the adapter boundary), so not in the zoo."""

    def wake_user(self) -> None:
        pass


class SlowInput(KSock):
    """Takes 0.2 s over each message sent to the kernel (a busy kernel side; no flaw): a sendmsg
    posted without waiting is then still being taken when its caller looks next."""

    def kernel_input(self, datagram: bytes) -> None:
        time.sleep(0.2)
        super().kernel_input(datagram)
