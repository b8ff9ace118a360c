"""The TX ring (sections 11, 12.1): the user fills frames, the kernel walks them on a kick.

The walk is split in halves so the 2014 race is a visible interleaving: claim the frame
(``tx_copy``: copy to private memory and release, 2015 on; ``tx_claim``: the shared frame itself,
3.10, when the eligibility test passes), then ``tx_validate``, then ``tx_act``; with zero-copy
``tx_release`` frees the frame last. A kick ends at a frame that is not VALID (``tx_done``:
sendmsg returns the bytes sent) or at an oversize one (``tx_reject``: EINVAL, the frame left
VALID under the head); ``tx_outcome`` records which, for the frame at the head."""

from __future__ import annotations

from ..expr import and_, eq, ite, ne
from ..system import Action, Assign, Param, Store
from .names import (
    MAPPED,
    RESERVED,
    TX_ACTED,
    TX_COPIED,
    TX_DRAINED,
    TX_EINVAL,
    TX_IDLE,
    TX_NO_OUTCOME,
    TX_VALIDATED,
    UNUSED,
    VALID,
    data,
    j,
    kernel_tx_read,
    ln,
    nxt,
    tx_cap,
    tx_cur,
    tx_data,
    tx_head,
    tx_inplace,
    tx_len,
    tx_n,
    tx_on,
    tx_outcome,
    tx_pending,
    tx_phase,
    tx_status,
    tx_ucur,
    tx_unacted,
    v,
    zero_copy_exclusive,
)
from .variants import Variant


def tx_actions(variant: Variant) -> list[Action]:
    """The TX ring's actions: user fill, adversary writes, and the kernel's walk."""
    # a write into the frame under the kernel's head makes the last kick's outcome stale
    stale = Assign("tx_outcome", ite(eq(j, tx_head), TX_NO_OUTCOME, tx_outcome))
    at_head = and_(tx_on, eq(tx_phase, TX_IDLE), eq(tx_status[tx_head], VALID))
    actions: list[Action] = [
        Action("fill_tx_frame", "user", (Param("j", 0, tx_n), Param("len", 0, 1 << 32), Param("data", sort="int")),
               and_(MAPPED, eq(j, tx_ucur), eq(tx_status[j], UNUSED)),
               (Store("tx_len", j, ln), Store("tx_data", j, data), Store("tx_status", j, VALID),
                Assign("tx_user_cursor", nxt(j, tx_n)), stale),
               "11.2", "The user writes a message and nm_len into the next UNUSED TX frame (in ring order, "
                       "never leaving a gap), then VALID."),
        Action("write_tx", "adversary",
               (Param("j", 0, tx_n), Param("v", 0, 1 << 32), Param("len", 0, 1 << 32), Param("data", sort="int")),
               MAPPED, (Store("tx_status", j, v), Store("tx_len", j, ln), Store("tx_data", j, data), stale),
               "11.2", "Any thread of the user writes any bytes of a TX frame, at any time."),
        Action("tx_reject", "kernel", (), and_(at_head, tx_cap < tx_len[tx_head]),
               (Assign("tx_outcome", TX_EINVAL),),
               "11.2", "nm_len > frame_size - 24: sendmsg returns EINVAL, the frame stays VALID and "
                       "the cursor stays on it.", errno="EINVAL"),
        Action("tx_done", "kernel", (), and_(eq(tx_phase, TX_IDLE), ne(tx_status[tx_head], VALID)),
               (Assign("tx_outcome", TX_DRAINED),),
               "11.2", "The frame at the cursor is not VALID: the walk ends and sendmsg returns the bytes "
                       "sent (0 if none)."),
    ]
    copy = Action("tx_copy", "kernel", (), and_(at_head, tx_len[tx_head] <= tx_cap),
                  (Assign("tx_private", tx_data[tx_head]), Assign("tx_plen", tx_len[tx_head]),
                   Store("tx_status", tx_head, UNUSED), Assign("tx_cur", tx_head),
                   Assign("tx_head", nxt(tx_head, tx_n)), Assign("tx_phase", TX_COPIED),
                   Assign("tx_outcome", TX_NO_OUTCOME), Assign("tx_unacted", tx_unacted + 1))
                  + ((Assign("tx_inplace", False),) if variant.tx_zero_copy else ()),
                  "11.2", "Read nm_len once, copy the message to private memory, release the frame "
                          "(UNUSED), advance.")
    actions.append(copy)
    if variant.tx_zero_copy:
        actions += [
            Action("tx_claim", "kernel", (), and_(at_head, tx_len[tx_head] <= tx_cap, zero_copy_exclusive()),
                   (Store("tx_status", tx_head, RESERVED), Assign("tx_pending", tx_pending + 1),
                    Assign("tx_cur", tx_head), Assign("tx_head", nxt(tx_head, tx_n)), Assign("tx_phase", TX_COPIED),
                    Assign("tx_inplace", True), Assign("tx_outcome", TX_NO_OUTCOME),
                    Assign("tx_unacted", tx_unacted + 1)),
                   "11.3", "3.10 zero-copy, for the kernel as destination when the eligibility test passes "
                           "(one mapping, the file not shared): the skb's data is the shared frame; it is "
                           "RESERVED in place."),
        ]
    src, srclen = kernel_tx_read(variant)
    actions += [
        Action("tx_validate", "kernel", (), eq(tx_phase, TX_COPIED),
               (Assign("tx_validated", src), Assign("tx_vlen", srclen), Assign("tx_phase", TX_VALIDATED)),
               "12.1", "The receiving family validates the message (lengths, attributes)."),
        Action("tx_act", "kernel", (), eq(tx_phase, TX_VALIDATED),
               (Assign("tx_phase", ite(tx_inplace, TX_ACTED, TX_IDLE) if variant.tx_zero_copy else TX_IDLE),
                Assign("tx_unacted", tx_unacted - 1)),
               "12.1", "The family acts on the message it validated."),
    ]
    if variant.tx_zero_copy:
        actions += [
            Action("tx_release", "kernel", (), eq(tx_phase, TX_ACTED),
                   (Store("tx_status", tx_cur, UNUSED), Assign("tx_pending", tx_pending - 1),
                    Assign("tx_phase", TX_IDLE)),
                   "11.3", "The zero-copy skb is freed: its frame becomes UNUSED."),
        ]
    return actions
