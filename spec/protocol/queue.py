"""The nfqueue-like queue service on one RX ring (section 12.2), as its own transition system.

Packet ids are u32 serial numbers (``++queue->id_sequence`` wraps after 0xFFFFFFFF to 0), and a
batch verdict for id ``m`` decides the queued packets, in queue order, up to the first whose id is
after ``m`` in serial-number arithmetic (``(int32)(id - m) > 0``). The queue list holds the ids
from ``q_head`` to ``id_seq`` in that order. The size of the id space is ``id_space``, a state
variable no action changes (2^32 on Linux, :data:`ID_SPACE`): the proofs hold for every id space,
so a counterexample at the wrap shows with a handful of ids. They cover the runs in which fewer than
half the id space is queued at once (beyond, serial comparison is undefined) and fewer than
``ID_LIMIT`` ids are assigned (``assigned``, the ghost count that bounds every quantifier over
past ids)."""

from __future__ import annotations

from ..abi import U32_MAX, Status
from ..expr import Expr, and_, cyclic_between, eq, forall, implies, ite, ne, not_, or_
from ..system import Action, Assign, Invariant, Param, StateVar, StepProperty, Store, StoreRange, System
from .names import RESERVED, UNUSED, VALID, V, nxt
from .variants import LINUX_4_5, Variant

#: A bound on the ids a run assigns (``assigned``): the proofs cover runs that assign fewer than
#: ``ID_LIMIT - 1`` ids, a prefix-closed bound far above anything real.
ID_LIMIT = 1 << 62
#: Packet ids are u32 (Linux): the id after U32_MAX is 0. The system's constant ``id_space``.
ID_SPACE = U32_MAX + 1
N_IDS = V("id_space")
#: The first packet id (``id_sequence`` starts at 0 and is incremented before use); the queue list
#: starts empty at it.
FIRST_ID = 1


def id_after(x: Expr) -> Expr:
    """``x + 1`` as a u32 packet id (``++id_sequence``)."""
    return ite(eq(x, N_IDS - 1), 0, x + 1)


def id_back(x: Expr, d: Expr) -> Expr:
    """The id ``d`` steps before id ``x`` (``0 <= d < id_space``)."""
    return ite(x < d, x - d + N_IDS, x - d)


def id_dist(a: Expr, b: Expr) -> Expr:
    """``(b - a) mod id_space``: how many ids after ``a`` comes ``b``."""
    return ite(a <= b, b - a, b - a + N_IDS)


def _half() -> Expr:
    from ..expr import Op

    return Op("div2", (N_IDS, N_IDS))


def queue_system(variant: Variant = LINUX_4_5) -> System:
    """nfqueue-like service on one RX ring with a well-behaved reader: kernel CPUs claim a frame
    and assign a packet id (under one lock with the fix, in two steps in mainline), the user reads
    frames in ring order and sends batch verdicts (a verdict for id m covers every queued id not
    after m in serial arithmetic)."""
    qn, qhead = V("rx_frame_nr"), V("rx_head")
    qst, fid = V("rx_status"), V("frame_id")
    cpu_frame, cpu_busy = V("cpu_frame"), V("cpu_busy")
    id_seq, ucur, q_head, assigned = V("id_seq"), V("user_cursor"), V("q_head"), V("assigned")
    seen, verdicted = V("seen"), V("verdicted")
    c, m = V("c"), V("m")
    state = (
        StateVar("id_space", "int", "how many packet ids there are (2^32: u32 ids; never changes)"),
        StateVar("rx_frame_nr", "int", "frames of the RX ring", size=True),
        StateVar("rx_status", "int_array", "nm_status of each frame", index="rx_frame_nr", values=Status),
        StateVar("rx_head", "int", "kernel cursor"),
        StateVar("frame_id", "int_array", "packet id carried by each VALID frame", index="rx_frame_nr"),
        StateVar("cpu_busy", "bool_array", "CPU c holds a claimed frame without an id yet"),
        StateVar("cpu_frame", "int_array", "the frame CPU c claimed"),
        StateVar("id_seq", "int", "last packet id assigned (++id_sequence under the queue lock, u32)"),
        StateVar("q_head", "int", "id at the head of the queue list (the queue holds q_head .. id_seq)"),
        StateVar("assigned", "int", "packet ids assigned so far", True),
        StateVar("user_cursor", "int", "the reader's position in the ring"),
        StateVar("seen", "bool_array", "the user has read the packet with this id", True),
        StateVar("verdicted", "bool_array", "a verdict was applied to this id", True),
    )
    # ids assigned so far, newest first: id_back(id_seq, d) for d in [0, past)
    past = ite(assigned < N_IDS, assigned, N_IDS)

    def each_past_id(body, name):  # for d in [0, assigned) within one lap of the id space
        return forall(0, assigned, lambda d: implies(d < N_IDS, body(d)), name)

    def queued(x: Expr) -> Expr:
        """Packet id ``x`` waits for a verdict: it lies in the queue list, ``q_head`` .. ``id_seq``."""
        return id_dist(x, id_seq) < id_dist(q_head, id_after(id_seq))

    init = and_(qn >= 1, eq(N_IDS, ID_SPACE), eq(qhead, 0), eq(id_seq, FIRST_ID - 1), eq(q_head, FIRST_ID),
                eq(assigned, 0), eq(ucur, 0),
                forall(0, qn, lambda kk: and_(eq(qst[kk], UNUSED), eq(fid[kk], 0)), "i"),
                forall(0, ID_SPACE, lambda kk: and_(not_(seen[kk]), not_(verdicted[kk])), "q"),
                forall(0, ID_LIMIT, lambda kk: and_(not_(cpu_busy[kk]), eq(cpu_frame[kk], 0)), "u"))
    cpu = Param("c", 0, None, doc="kernel CPU")
    new_id = id_after(id_seq)
    enqueue_updates = lambda f: (  # noqa: E731
        Assign("id_seq", new_id), Assign("assigned", assigned + 1), Store("frame_id", f, new_id),
        Store("rx_status", f, VALID), Store("seen", new_id, False), Store("verdicted", new_id, False))
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
    # the queue list from its head up to m: from the head, or, when the list wraps past the last id,
    # from the head to the last id and then from 0 (verdict_batch_wrap)
    x = V("x")
    verdict_param = (Param("m", 0, ite(assigned < N_IDS, assigned + 1, N_IDS),
                           doc="a packet id (an id assigned so far)"),)
    actions += [
        Action("read_frame", "user", (), eq(qst[ucur], VALID),
               (Store("seen", fid[ucur], True), Store("rx_status", ucur, UNUSED), Store("frame_id", ucur, 0),
                Assign("user_cursor", nxt(ucur, qn))),
               "15", "The reader takes the VALID frame at its cursor (in ring order), reads the id, releases it."),
        Action("verdict_batch", "user", verdict_param, and_(seen[m], queued(m), q_head <= m),
               (StoreRange("verdicted", "x", 0, m + 1, or_(verdicted[x], q_head <= x)), Assign("q_head", id_after(m))),
               "12.2", "NFQNL_MSG_VERDICT_BATCH for id m: walking the queue list from its head, every id "
                       "not after m (serial arithmetic) gets the verdict and leaves the queue."),
        Action("verdict_batch_wrap", "user", verdict_param, and_(seen[m], queued(m), m < q_head),
               (StoreRange("verdicted", "x", 0, m + 1, True), StoreRange("verdicted", "x", q_head, N_IDS, True),
                Assign("q_head", id_after(m))),
               "12.2", "The same verdict when the queue list wraps past the last id: the ids from its head "
                       "to the last id, then from 0 to m."),
    ]
    invariants = (
        Invariant("BatchVerdictSound",
                  each_past_id(lambda d: implies(verdicted[id_back(id_seq, d)], seen[id_back(id_seq, d)]), "v"),
                  "a batch verdict covers only packets the user has seen", "12.2, 17.11", user="well-behaved"),
        Invariant("NoPacketLeftUndecided",
                  each_past_id(lambda d: or_(queued(id_back(id_seq, d)), verdicted[id_back(id_seq, d)]), "l"),
                  "a packet leaves the queue only with a verdict", "12.2", user="well-behaved"),
        Invariant("HeadInRange", and_(0 <= qhead, qhead < qn, 0 <= ucur, ucur < qn, qn <= (N_IDS - 1)),
                  "cursors name frames of the ring (of at most 2^32 - 1 frames)", "17.4"),
        Invariant("QueueIsSerialWindow",
                  and_(0 <= id_seq, id_seq <= (N_IDS - 1), 0 <= q_head, q_head <= (N_IDS - 1), assigned >= 0,
                       id_dist(q_head, id_after(id_seq)) <= past, ite(eq(assigned, 0), eq(id_seq, 0), True)),
                  "the queue list holds exactly the ids from its head to the last one assigned, in serial "
                  "order: what a batch verdict walks", "12.2", user="well-behaved"),
    )
    invariants += (
        Invariant("FramesCarryAssignedIds",
                  forall(0, qn, lambda kk: implies(eq(qst[kk], VALID), and_(
                      0 <= fid[kk], fid[kk] <= (N_IDS - 1), id_dist(fid[kk], id_seq) < past)), "f"),
                  "a VALID frame carries an id already assigned", "12.2", user="well-behaved", strengthening=True),
    )
    if not variant.queue_alloc_outside_lock:
        # Strengthening invariants of the fix (nlmmap prove): with claim, id and publish under one
        # lock, the VALID frames are exactly the cyclic run from the reader's cursor to the kernel's
        # head, carrying consecutive ids that end at id_seq; the user has seen exactly the ids
        # before the one at its cursor. (Mainline breaks both: see nlmmap bmc.)
        valid = lambda kk: eq(qst[kk], VALID)  # noqa: E731
        back = lambda kk: ite(kk < qhead, qhead - kk, qhead - kk + qn)  # noqa: E731
        unseen = ite(valid(ucur), id_dist(fid[ucur], id_seq) + 1, 0)  # ids from the cursor's to id_seq
        invariants += (
            Invariant("QueueRingIsIdOrder",
                      forall(0, qn, lambda kk: and_(
                          or_(valid(kk), eq(qst[kk], UNUSED)),
                          implies(valid(kk), and_(0 <= fid[kk], fid[kk] <= (N_IDS - 1), back(kk) <= past,
                                                  eq(id_dist(fid[kk], id_seq), back(kk) - 1))),
                          implies(cyclic_between(kk, ucur, qhead), valid(kk)),
                          implies(and_(valid(kk), ne(ucur, qhead)), cyclic_between(kk, ucur, qhead)),
                          implies(eq(ucur, qhead), eq(valid(kk), valid(ucur)))), "w"),
                      "the VALID frames run from the reader's cursor to the head with consecutive ids "
                      "ending at id_seq", "12.2", user="well-behaved", strengthening=True),
            Invariant("SeenIsPrefix",
                      each_past_id(lambda d: eq(seen[id_back(id_seq, d)], unseen <= d), "s"),
                      "the user has seen exactly the ids before the one at its cursor", "12.2",
                      user="well-behaved", strengthening=True),
        )
    steps = (
        StepProperty("BatchVerdictNamesAQueuedId", {"verdict_batch": queued(m), "verdict_batch_wrap": queued(m)},
                     "a batch verdict names a packet that is still queued (ENOENT otherwise)", "12.2",
                     user="well-behaved"),
    )
    # Proof aids (nlmmap prove only: they quantify over every u32 packet id, a range the executable
    # model cannot loop over; stated per id, they are what the solver instantiates): the properties
    # above for every id, and ids not assigned yet carry no state (true initially by init's own
    # quantifier over all ids; an enqueue writes only the id it assigns).
    age = lambda x: id_dist(x, id_seq)  # noqa: E731  how many ids ago x was assigned
    aids: list[Invariant] = [
        Invariant("NoPacketLeftUndecidedEveryId",
                  forall(0, N_IDS, lambda x: implies(age(x) < past, or_(queued(x), verdicted[x])), "a"),
                  "every assigned id is queued or decided", "12.2", user="well-behaved", strengthening=True),
    ]
    if not variant.queue_alloc_outside_lock:
        unseen_x = ite(eq(qst[ucur], VALID), id_dist(fid[ucur], id_seq) + 1, 0)
        aids += [
            Invariant("BatchVerdictSoundEveryId",
                      forall(0, N_IDS, lambda x: implies(verdicted[x], seen[x]), "b"),
                      "no id was decided unseen", "12.2", user="well-behaved", strengthening=True),
            Invariant("SeenIsPrefixEveryId",
                      forall(0, N_IDS, lambda x: implies(age(x) < past, eq(seen[x], unseen_x <= age(x))), "p"),
                      "an assigned id is seen exactly when it is older than the one at the cursor", "12.2",
                      user="well-behaved", strengthening=True),
        ]
    # Linux's id space is 2^32 (init); the proofs of consecution hold for any id space of two ids or
    # more and a ring of fewer frames than ids (so a wrap-around bug shows in a small scope)
    assumptions = and_(N_IDS >= 2, qn <= N_IDS - 1)
    return System("queue", {"queue_alloc_outside_lock": variant.queue_alloc_outside_lock}, (), assumptions,
                  state, init, tuple(actions), invariants, steps, queue_system.__doc__ or "",
                  proof_aids=tuple(aids),
                  # the proofs cover the runs that assign fewer than ID_LIMIT - 1 ids and never queue
                  # half the id space at once (prefix-closed)
                  run_bound=and_(assigned < ID_LIMIT - 1, id_dist(q_head, id_after(id_seq)) < _half()),
                  # assigned starts at 0 and grows by one per enqueue: BMC bounds it (and id_seq) by depth + 1
                  scoped_counters=("id_seq", "assigned"))
