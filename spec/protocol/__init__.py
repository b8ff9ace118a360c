"""The protocol, written once: one netlink socket with an RX and a TX ring, as a transition system.

Read this module like the fact sheet it encodes (kernel-protocol.md; section numbers in every
action). The *state* of a socket is its rings (frame statuses; for RX each frame's ``nm_len`` and
``nm_group``, for TX its ``nm_len`` and contents; the kernel's head, the pending count), its
receive queue, its error state (``congested``, a pending ``sk_err`` of ENOBUFS,
NETLINK_NO_ENOBUFS, ``sk_drops``), whether a dump runs, and the mappings. *Ghost* variables
record what the invariants talk about and the kernel never stores: which frames the kernel has
claimed and not yet published (``rx_owned``), which hold a kernel message the user has not yet
taken (``rx_held``), the order in which frames were claimed (``rx_seq``), the message each frame
was given (``rx_mlen``, ``rx_mgroup``, ``rx_cred``: its credentials were written), which COPY
frames' messages are still queued (``rx_queued``, and ``rq_orphans`` for those whose frame the
user handed back early), the ENOBUFS raised and reported (``enobufs_*``, ``ack_enobufs``,
``queue_drained``), the user's TX cursor and what the last kick returned (``tx_outcome``), and an
account of every message the kernel sent (``sent = in_ring + rq_len + consumed + drops +
aborted + purged``, where ``drops`` is the kernel's own ``sk_drops``).

*Actions* are split into the kernel's and the user's halves so that races are visible steps:
``alloc`` (claim a frame) is apart from ``publish`` (hand it over), and the TX walk is
``tx_copy`` / ``tx_validate`` / ``tx_act``, ending in ``tx_done`` or ``tx_reject``. The user's
``write_status``, ``write_rx_header`` and ``write_tx`` are the adversary: shared memory can be
written at any time, with any value, through a mapping, and the invariants marked ``user="any"``
must hold whatever it writes.

Historical behaviours are switches of the same spec (all off = Linux 4.5):

* ``tx_zero_copy`` (3.10-3.18): TX validates the message in the shared frame and uses it later,
  when the eligibility test passes (one mapping, the file not shared), which a thread sharing
  that mapping passes;
* ``skip_broken`` (before 4.4): allocation does not step over SKIP frames;
* ``poll_head_minus_one`` (before 4.4): POLLIN iff the frame behind the head is not UNUSED;
* ``dump_offset_bug`` (4.4.34): dump data is placed away from frame + 24 (model only);

and, for the nfqueue-like queue service (:func:`queue_system`, u32 packet ids in serial-number
arithmetic), ``queue_alloc_outside_lock`` (mainline: the frame is claimed before the packet id is
assigned under the queue lock) versus its fix ``queue_alloc_under_lock``.

The package reads in the fact sheet's order: :mod:`.state` (the state and the initial
condition), :mod:`.ring_setup` (sections 3, 4), :mod:`.rx_kernel` (6, 10), :mod:`.rx_user` (5,
7-9), :mod:`.tx` (11, 12.1), :mod:`.properties` (17), :mod:`.queue` (12.2), :mod:`.geometry`
(2.2, 2.4: the layout obligations, in z3 directly); :mod:`.names` holds the shared vocabulary and
:mod:`.variants` the history switches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..abi import Status
from ..system import System
from .names import (
    OVERRUN_ACTIONS,
    TX_ACTED,
    TX_COPIED,
    TX_IDLE,
    TX_VALIDATED,
    choose_alloc,
    dump_space,
    fits_frame,
    poll_err,
    poll_in,
)
from .queue import queue_system
from .socket import socket_system
from .variants import EXPECTED_VIOLATIONS, LINUX_4_5, VARIANT_SWITCHES, Variant, expected_violations

__all__ = [
    "Variant", "VARIANT_SWITCHES", "socket_system", "queue_system", "TX_IDLE", "TX_COPIED", "TX_VALIDATED",
    "TX_ACTED", "fits_frame", "poll_in", "poll_err", "dump_space", "choose_alloc", "OVERRUN_ACTIONS",
    "EXPECTED_VIOLATIONS", "expected_violations", "system_by_name", "describe",
]


def system_by_name(name: str, variant: Variant = LINUX_4_5) -> System:
    """``"socket"`` or ``"queue"``."""
    if name == "socket":
        return socket_system(variant)
    if name == "queue":
        return queue_system(variant)
    from ..errors import NetlinkError

    raise NetlinkError("EINVAL", f"unknown system {name!r}; known: socket, queue")


def describe(system: System) -> Mapping[str, Any]:
    """Plain-dict summary (actions with guards, invariants) for tables and ``--json``."""
    from ..expr import render

    names = {int(s): s.name for s in Status}
    return {
        "system": system.name,
        "variant": dict(system.variant),
        "actions": [{"name": a.name, "actor": a.actor, "section": a.section, "doc": a.doc,
                     "params": [p.name for p in a.params], "guard": render(a.guard, names),
                     "modifies": list(a.modifies)} for a in system.actions],
        "invariants": [{"name": inv.name, "protects": inv.protects, "section": inv.section, "user": inv.user}
                       for inv in system.invariants],
        "step_properties": [{"name": sp.name, "protects": sp.protects, "actions": sorted(sp.per_action)}
                            for sp in system.step_properties],
    }
