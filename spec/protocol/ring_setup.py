"""Setup (sections 3, 4, 6.5, 11.3): ring creation and tear-down, mmap/munmap, NETLINK_NO_ENOBUFS,
and (3.10 zero-copy only) other references to the socket file."""

from __future__ import annotations

from ..expr import and_, eq, not_, or_
from ..system import Action, Assign, Param, StoreRange
from .names import (
    TX_IDLE,
    TX_NO_OUTCOME,
    UNUSED,
    cap,
    congested,
    consumed,
    in_ring,
    mapped,
    n,
    on,
    purged,
    rq_len,
    rx_n,
    rx_on,
    rx_pending,
    tx_n,
    tx_on,
    tx_pending,
    tx_phase,
)
from .variants import Variant


def _purge() -> tuple:
    """Section 3.1 step 6: the receive queue is purged (its messages are lost, counted as purged)."""
    return (Assign("rq_len", 0), Assign("purged", purged + rq_len), Assign("rq_orphans", 0))


def setup_actions(variant: Variant) -> list[Action]:
    """The user's setup calls (setsockopt of the rings, mmap, munmap, NO_ENOBUFS)."""
    actions = [
        Action("set_rx_ring", "user", (Param("n", 1, None), Param("cap", 0, None)),
               and_(eq(mapped, 0), eq(rx_n, 0)),  # nothing is pending without a ring
               (Assign("rx_frame_nr", n), Assign("rx_capacity", cap), Assign("rx_head", 0),
                StoreRange("rx_status", "r", 0, n, UNUSED), StoreRange("rx_len", "r", 0, n, 0),
                StoreRange("rx_group", "r", 0, n, 0), StoreRange("rx_owned", "r", 0, n, 0),
                StoreRange("rx_held", "r", 0, n, False), StoreRange("rx_seq", "r", 0, n, 0),
                StoreRange("rx_cred", "r", 0, n, False), StoreRange("rx_mlen", "r", 0, n, 0),
                StoreRange("rx_mgroup", "r", 0, n, 0), StoreRange("rx_queued", "r", 0, n, False)) + _purge()
               + (Assign("in_ring", 0), Assign("consumed", consumed + in_ring)),
               "3.1", "setsockopt(NETLINK_RX_RING) creates a zeroed ring, purging the receive queue; "
               "only while unmapped, with nothing pending and no ring yet.", refusal="EBUSY"),
        Action("teardown_rx_ring", "user", (),
               and_(eq(mapped, 0), eq(rx_pending, 0)),
               (Assign("rx_frame_nr", 0), Assign("rx_head", 0)) + _purge()
               + (Assign("in_ring", 0), Assign("consumed", consumed + in_ring),
                  StoreRange("rx_held", "r", 0, rx_n, False), StoreRange("rx_seq", "r", 0, rx_n, 0),
                  StoreRange("rx_queued", "r", 0, rx_n, False)),
               "3.1", "An all-zero request tears the ring down (and still purges the queue).", refusal="EBUSY"),
        Action("set_tx_ring", "user", (Param("n", 1, None), Param("cap", 0, None)),
               and_(eq(mapped, 0), eq(tx_n, 0)),  # nothing is pending (no walk) without a ring
               (Assign("tx_frame_nr", n), Assign("tx_capacity", cap), Assign("tx_head", 0),
                StoreRange("tx_status", "r", 0, n, UNUSED), StoreRange("tx_len", "r", 0, n, 0),
                StoreRange("tx_data", "r", 0, n, 0), Assign("tx_user_cursor", 0),
                Assign("tx_outcome", TX_NO_OUTCOME)),
               "3.1", "setsockopt(NETLINK_TX_RING) creates a zeroed TX ring.", refusal="EBUSY"),
        Action("teardown_tx_ring", "user", (),
               and_(eq(mapped, 0), eq(tx_phase, TX_IDLE), *((eq(tx_pending, 0),) if variant.tx_zero_copy else ())),
               (Assign("tx_frame_nr", 0), Assign("tx_head", 0)),
               "3.1", "Tear-down of the TX ring.", refusal="EBUSY"),
        Action("mmap", "user", (), or_(rx_on, tx_on), (Assign("mapped", mapped + 1),),
               "4", "mmap() of both rings: mapped += 1 (rings can no longer change).", refusal="EINVAL"),
        Action("munmap", "user", (), mapped >= 1, (Assign("mapped", mapped - 1),),
               "4", "munmap(): mapped -= 1; the rings keep their state.", refusal="EINVAL"),
        Action("set_no_enobufs", "user", (Param("on", sort="bool"),), True,
               (Assign("no_enobufs", on), Assign("congested", and_(congested, not_(on)))),
               "6.5", "NETLINK_NO_ENOBUFS; setting it clears CONGESTED at once."),
    ]
    if variant.tx_zero_copy:
        actions += [
            Action("share_file", "user", (), True, (Assign("file_shared", True),),
                   "11.3", "dup(), fork() or SCM_RIGHTS: another holder of the socket file."),
            Action("unshare_file", "user", (), True, (Assign("file_shared", False),),
                   "11.3", "The other holders close the socket file."),
        ]
    return actions
