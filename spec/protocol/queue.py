"""The nfqueue-like queue service on one RX ring (section 12.2), as its own transition system."""

from __future__ import annotations

from ..abi import Status
from ..expr import and_, cyclic_between, eq, forall, implies, ite, ne, not_, or_
from ..system import Action, Assign, Invariant, Param, StateVar, StepProperty, Store, StoreRange, System
from .names import RESERVED, UNUSED, VALID, V, nxt
from .variants import LINUX_4_5, Variant

#: Packet ids the queue service tracks: ``init`` clears the per-id state of every id below this
#: (a bounded quantifier), so ids are in ``[1, ID_LIMIT)`` and the proofs cover runs that assign
#: fewer than ``ID_LIMIT - 1`` ids (real ids are u32, far below).
ID_LIMIT = 1 << 62


def queue_system(variant: Variant = LINUX_4_5) -> System:
    """nfqueue-like service on one RX ring with a well-behaved reader: kernel CPUs claim a frame
    and assign a packet id (under one lock with the fix, in two steps in mainline), the user reads
    frames in ring order and sends batch verdicts (a verdict for id n covers every queued id <= n)."""
    qn, qhead = V("rx_frame_nr"), V("rx_head")
    qst, fid = V("rx_status"), V("frame_id")
    cpu_frame, cpu_busy = V("cpu_frame"), V("cpu_busy")
    id_seq, ucur = V("id_seq"), V("user_cursor")
    queued, seen, verdicted = V("queued"), V("seen"), V("verdicted")
    c, m = V("c"), V("m")
    state = (
        StateVar("rx_frame_nr", "int", "frames of the RX ring", size=True),
        StateVar("rx_status", "int_array", "nm_status of each frame", index="rx_frame_nr", values=Status),
        StateVar("rx_head", "int", "kernel cursor"),
        StateVar("frame_id", "int_array", "packet id carried by each frame (0: none yet)", index="rx_frame_nr"),
        StateVar("cpu_busy", "bool_array", "CPU c holds a claimed frame without an id yet"),
        StateVar("cpu_frame", "int_array", "the frame CPU c claimed"),
        StateVar("id_seq", "int", "last packet id assigned (++id_sequence under the queue lock)"),
        StateVar("user_cursor", "int", "the reader's position in the ring"),
        StateVar("queued", "bool_array", "packet id is waiting for a verdict"),
        StateVar("seen", "bool_array", "the user has read the packet with this id", True),
        StateVar("verdicted", "bool_array", "a verdict was applied to this id", True),
    )
    init = and_(qn >= 1, eq(qhead, 0), eq(id_seq, 0), eq(ucur, 0),
                forall(0, qn, lambda kk: and_(eq(qst[kk], UNUSED), eq(fid[kk], 0)), "i"),
                forall(0, ID_LIMIT, lambda kk: and_(not_(cpu_busy[kk]), not_(queued[kk]), not_(seen[kk]),
                                                    not_(verdicted[kk])), "q"))
    cpu = Param("c", 0, None, doc="kernel CPU")
    enqueue_updates = lambda f: (  # noqa: E731
        Assign("id_seq", id_seq + 1), Store("frame_id", f, id_seq + 1), Store("rx_status", f, VALID),
        Store("queued", id_seq + 1, True))
    actions: list[Action] = []
    if variant.queue_alloc_outside_lock:
        actions += [
            Action("queue_alloc", "kernel", (cpu,), and_(not_(cpu_busy[c]), eq(qst[qhead], UNUSED)),
                   (Store("rx_status", qhead, RESERVED), Store("cpu_busy", c, True), Store("cpu_frame", c, qhead),
                    Assign("rx_head", nxt(qhead, qn))),
                   "12.2", "nfqnl_build_packet_message: the ring frame is claimed outside the queue lock."),
            Action("queue_send", "kernel", (cpu,), cpu_busy[c],
                   (Store("cpu_busy", c, False),) + enqueue_updates(cpu_frame[c]),
                   "12.2", "Under the queue lock: id = ++id_sequence, build, publish VALID, enqueue."),
        ]
    else:
        actions += [
            Action("queue_enqueue", "kernel", (cpu,), eq(qst[qhead], UNUSED),
                   (Assign("rx_head", nxt(qhead, qn)),) + enqueue_updates(qhead),
                   "12.2", "Extended spinlock: claim the frame, assign the id, publish and enqueue under "
                           "one lock."),
        ]
    actions += [
        Action("read_frame", "user", (), eq(qst[ucur], VALID),
               (Store("seen", fid[ucur], True), Store("rx_status", ucur, UNUSED), Store("frame_id", ucur, 0),
                Assign("user_cursor", nxt(ucur, qn))),
               "15", "The reader takes the VALID frame at its cursor (in ring order), reads the id, releases it."),
        Action("verdict_batch", "user", (Param("m", 1, id_seq + 1, doc="a packet id assigned so far"),),
               and_(seen[m], queued[m]),
               (StoreRange("verdicted", "x", 1, m + 1, or_(verdicted[V("x")], queued[V("x")])),
                StoreRange("queued", "x", 1, m + 1, False)),
               "12.2", "NFQNL_MSG_VERDICT_BATCH for id m: every queued id <= m gets the verdict."),
    ]
    invariants = (
        Invariant("BatchVerdictSound", forall(1, id_seq + 1, lambda x: implies(verdicted[x], seen[x]), "v"),
                  "a batch verdict covers only packets the user has seen", "12.2, 17.11", user="well-behaved"),
        Invariant("HeadInRange", and_(0 <= qhead, qhead < qn, 0 <= ucur, ucur < qn),
                  "cursors name frames of the ring", "17.4"),
    )
    if not variant.queue_alloc_outside_lock:
        # Strengthening invariants of the fix (nlmmap prove): with claim, id and publish under one
        # lock, the VALID frames are exactly the cyclic run from the reader's cursor to the kernel's
        # head, carrying consecutive ids that end at id_seq; the user has seen exactly the ids
        # below the one at its cursor. (Mainline breaks both: see nlmmap bmc.)
        valid = lambda kk: eq(qst[kk], VALID)  # noqa: E731
        back = lambda kk: ite(kk < qhead, qhead - kk, qhead - kk + qn)  # noqa: E731
        first_unseen = ite(valid(ucur), fid[ucur], id_seq + 1)
        invariants += (
            Invariant("QueueRingIsIdOrder",
                      and_(id_seq >= 0, forall(0, qn, lambda kk: and_(
                          or_(valid(kk), eq(qst[kk], UNUSED)),
                          implies(valid(kk), and_(eq(fid[kk], id_seq + 1 - back(kk)), fid[kk] >= 1)),
                          implies(cyclic_between(kk, ucur, qhead), valid(kk)),
                          implies(and_(valid(kk), ne(ucur, qhead)), cyclic_between(kk, ucur, qhead)),
                          implies(eq(ucur, qhead), eq(valid(kk), valid(ucur)))), "w")),
                      "the VALID frames run from the reader's cursor to the head with consecutive ids "
                      "ending at id_seq", "12.2", user="well-behaved", strengthening=True),
            Invariant("SeenIsPrefix",
                      forall(1, id_seq + 1, lambda x: eq(seen[x], x < first_unseen), "s"),
                      "the user has seen exactly the ids below the one at its cursor", "12.2",
                      user="well-behaved", strengthening=True),
        )
    steps = (
        StepProperty("BatchVerdictNamesAQueuedId", {"verdict_batch": queued[m]},
                     "a batch verdict names a packet that is still queued (ENOENT otherwise)", "12.2",
                     user="well-behaved"),
    )
    # Proof aid (nlmmap prove only: it quantifies over every packet id, a range the executable model
    # cannot loop over): ids above id_seq were never queued, seen or verdicted. True initially by
    # init's own quantifier over all ids, and no action writes above id_seq + 1.
    unused_above = Invariant(
        "QueueIdsAboveSeqUnused",
        forall(id_seq + 1, ID_LIMIT, lambda x: and_(not_(seen[x]), not_(verdicted[x]), not_(queued[x])), "z"),
        "ids not yet assigned carry no state", "12.2", user="well-behaved", strengthening=True)
    return System("queue", {"queue_alloc_outside_lock": variant.queue_alloc_outside_lock}, (), True, state,
                  init, tuple(actions), invariants, steps, queue_system.__doc__ or "",
                  proof_aids=(unused_above,),
                  # the proofs cover the runs that assign fewer than ID_LIMIT - 1 ids (prefix-closed)
                  run_bound=id_seq < ID_LIMIT - 1,
                  # id_seq starts at 0 and grows by one per enqueue: BMC bounds it by depth + 1
                  scoped_counters=("id_seq",))

