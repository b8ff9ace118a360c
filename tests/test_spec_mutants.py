"""A zoo of realistic spec bugs (kernel-protocol.md's rules, got wrong the way a kernel developer
would: an off-by-one at the wrap, ``>=`` for ``>``, a forgotten update, the wrong frame or status,
a check dropped): each one, applied to the built system, must make ``nlmmap prove`` answer FAILED
on the property it breaks, with a readable counterexample to induction, at the default budget. A
solver ``unknown`` is a miss, never a catch.

Each mutant is data: its name, what it breaks in words, the fact-sheet section, the system and
variant, the action it changes and how (one update replaced, dropped or added, or one guard
conjunct replaced), and the property that must catch it."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from nlmmap.spec.expr import Const, Expr, Op, _lift, and_, cyclic_between, eq, forall, implies, in_set, ite, or_
from nlmmap.spec.protocol import Variant, queue_system, socket_system
from nlmmap.spec.protocol import names as N
from nlmmap.spec.protocol import queue as Q
from nlmmap.spec.prove import DEFAULT_TIMEOUT_MS, Verdict, prove_system
from nlmmap.spec.system import Action, Assign, Store, StoreRange, System, Update

V = N.V


# --- how a mutant changes one action ----------------------------------------------------------------
def _target(u: Update) -> str:
    return u.var if isinstance(u, Assign) else u.array


def replace_update(target: str, new: Update | None, *, nth: int = 0) -> Callable[[Action], Action]:
    """Replace (None: drop) the ``nth`` update of ``target``."""

    def f(a: Action) -> Action:
        hits = [i for i, u in enumerate(a.updates) if _target(u) == target]
        if len(hits) <= nth:
            raise AssertionError(f"{a.name} has no update #{nth} of {target}: {[_target(u) for u in a.updates]}")
        ups = list(a.updates)
        if new is None:
            del ups[hits[nth]]
        else:
            ups[hits[nth]] = new
        return dataclasses.replace(a, updates=tuple(ups))

    return f


def add_updates(*new: Update) -> Callable[[Action], Action]:
    """Append updates (a step the kernel should not take)."""
    return lambda a: dataclasses.replace(a, updates=a.updates + tuple(new))


def _conjuncts(g: Expr) -> list[Expr]:
    if isinstance(g, Op) and g.op == "and":
        return [c for x in g.args for c in _conjuncts(x)]
    return [g]


def replace_conjunct(index: int, new: Expr | None) -> Callable[[Action], Action]:
    """Replace (None: drop) guard conjunct ``index``."""

    def f(a: Action) -> Action:
        cs = _conjuncts(_lift(a.guard))
        cs = cs[:index] + ([] if new is None else [new]) + cs[index + 1:]
        return dataclasses.replace(a, guard=and_(*cs) if cs else Const(True))

    return f


@dataclass(frozen=True)
class Mutant:
    """One realistic spec bug."""

    name: str
    breaks: str
    section: str
    action: str
    change: Callable[[Action], Action] = field(repr=False)
    caught_by: str
    system: str = "socket"
    variant: Variant = Variant()

    def build(self) -> System:
        base = socket_system(self.variant) if self.system == "socket" else queue_system(self.variant)
        a = base.action(self.action)
        m = self.change(a)
        return dataclasses.replace(base, actions=tuple(m if x is a else x for x in base.actions))


UNDER_LOCK = Variant(queue_alloc_outside_lock=False)
rx_n, rx_head, j, tx_head, tx_n = N.rx_n, N.rx_head, N.j, N.tx_head, N.tx_n
U, R, VA, C, S = N.UNUSED, N.RESERVED, N.VALID, N.COPY, N.SKIP


def _off_by_one_wrap(x: Expr, nr: Expr) -> Expr:
    """``netlink_increment_head`` with the wrong end test (``head == frame_nr`` for frame_max)."""
    return ite(eq(x, nr), 0, x + 1)


def _dump_space_frame_nr() -> Expr:
    m = rx_head + Op("div2", (rx_n - 1, rx_n - 1))
    return and_(N.rx_on, eq(N.rx_status[rx_head], U), eq(N.rx_status[ite(rx_n - 1 < m, m - rx_n, m)], U))


ZOO: tuple[Mutant, ...] = (
    # --- the seven bugs the old spec proved (issue 10) ---------------------------------------------------
    Mutant("tx_head_not_advanced", "the TX head stays on the frame just copied", "11.2", "tx_copy",
           replace_update("tx_head", None), "TxWalkFollowsHead"),
    Mutant("oversize_tx_frame_consumed", "an oversize TX frame is released and passed instead of left VALID under "
           "the head", "11.2", "tx_reject",
           add_updates(Store("tx_status", tx_head, U), Assign("tx_head", N.nxt(tx_head, tx_n))), "TxProgress"),
    Mutant("recvmsg_keeps_enobufs", "recvmsg returns ENOBUFS but leaves it pending", "8", "recvmsg_error",
           replace_update("sk_err", None), "EnobufsOncePerEpisode"),
    Mutant("overrun_never_raises", "an overrun congests the socket but never raises ENOBUFS", "6.5", "alloc_full",
           replace_update("sk_err", None), "NoSilentLoss"),
    Mutant("ring_setup_keeps_queue", "ring setup does not purge the receive queue", "3.1", "set_rx_ring",
           lambda a: replace_update("purged", None)(replace_update("rq_len", None)(a)), "QueueMatchesCopyFrames"),
    Mutant("pollin_ignores_valid_frames", "POLLIN only for a non-empty receive queue, never for a VALID frame",
           "7", "poll", replace_conjunct(0, eq(N.rin, N.rq_len >= 1)), "PollInMeansReadable"),
    Mutant("abort_frees_frame", "an aborted allocation frees its frame (UNUSED) instead of publishing it empty",
           "6.4", "abort", replace_update("rx_status", Store("rx_status", j, U)), "ClaimedFramesHoldMessages"),
    # --- the four that ended unknown (issue 10) ----------------------------------------------------------
    Mutant("publish_keeps_pending", "publish does not decrement the pending count", "6.2", "publish",
           replace_update("rx_pending", None), "PendingMatchesReserved"),
    Mutant("publish_marks_next_frame", "publish marks the frame after the claimed one VALID", "6.2", "publish",
           replace_update("rx_status", Store("rx_status", N.nxt(j, rx_n), VA)), "PendingMatchesReserved"),
    Mutant("batch_verdict_one_too_many", "a batch verdict for id m also decides m + 1", "12.2", "verdict_batch",
           lambda a: replace_update("q_head", Assign("q_head", Q.id_after(Q.id_after(V("m")))))(
               replace_update("verdicted", StoreRange("verdicted", "x", 0, V("m") + 2, or_(
                   V("verdicted")[V("x")], V("q_head") <= V("x"))))(a)),
           "BatchVerdictSound", system="queue", variant=UNDER_LOCK),
    Mutant("under_lock_head_stays", "the under-lock enqueue does not advance the ring head", "12.2",
           "queue_enqueue", replace_update("rx_head", None), "QueueRingIsIdOrder", system="queue",
           variant=UNDER_LOCK),
    # --- head arithmetic ------------------------------------------------------------------------------
    Mutant("rx_head_wrap_off_by_one", "the RX head wraps after frame_nr instead of frame_max", "2.3", "alloc",
           replace_update("rx_head", Assign("rx_head", _off_by_one_wrap(j, rx_n))), "HeadInRange"),
    Mutant("tx_head_wrap_off_by_one", "the TX head wraps after frame_nr instead of frame_max", "2.3", "tx_copy",
           replace_update("tx_head", Assign("tx_head", _off_by_one_wrap(tx_head, tx_n))), "HeadInRange"),
    Mutant("copy_path_head_not_advanced", "the COPY path claims the frame but leaves the head on it", "6.3",
           "copy_claim", replace_update("rx_head", None), "RingOrderIsAllocationOrder"),
    Mutant("ring_full_head_moves", "a full ring moves the head past the frame that blocked it", "6.1",
           "alloc_full", replace_update("rx_head", Assign("rx_head", N.nxt(j, rx_n))), "RingOrderIsAllocationOrder"),
    # --- skipped frames -------------------------------------------------------------------------------
    Mutant("alloc_claims_skip", "allocation claims a SKIP frame as if it were UNUSED", "9", "alloc",
           replace_conjunct(2, in_set(N.rx_status[j], (U, S))), "SkipNeverClaimed"),
    Mutant("forward_ring_steps_over_valid", "forward_ring steps over VALID frames as well as SKIP", "2.3", "alloc",
           replace_conjunct(1, forall(0, rx_n, lambda k: implies(cyclic_between(k, rx_head, j),
                                                                  in_set(N.rx_status[k], (S, VA))), "f")),
           "RingOrderIsAllocationOrder"),
    Mutant("skip_keeps_message", "SKIP does not hand the frame's message to the user", "9", "skip_frame",
           replace_update("consumed", None), "NoSilentLoss"),
    # --- publish / abort ------------------------------------------------------------------------------
    Mutant("publish_without_length", "VALID published without its length (nm_len stale)", "6.2", "publish",
           replace_update("rx_len", None), "FrameHeaderDescribesMessage"),
    Mutant("publish_without_credentials", "publish leaves the previous message's credentials in the header",
           "13.2", "publish", replace_update("rx_cred", None), "FrameHeaderDescribesMessage"),
    Mutant("abort_keeps_length", "an aborted frame is published VALID with its stale nm_len", "6.4", "abort",
           replace_update("rx_len", None), "FrameHeaderDescribesMessage"),
    Mutant("abort_leaves_reserved", "an aborted allocation stays RESERVED", "6.4", "abort",
           replace_update("rx_status", None), "PendingMatchesReserved"),
    Mutant("copy_frame_without_group", "a multicast message's COPY frame shows nm_group 0", "6.3, 13.3",
           "copy_claim", replace_update("rx_group", Store("rx_group", rx_head, 0)), "FrameHeaderDescribesMessage"),
    # --- the receive queue ------------------------------------------------------------------------------
    Mutant("copy_not_queued", "the COPY path marks the frame but never queues its message", "6.3", "copy_claim",
           replace_update("rx_queued", None), "QueueMatchesCopyFrames"),
    Mutant("recvmsg_takes_newest", "recvmsg dequeues the newest queued message, not the oldest", "8", "recvmsg",
           replace_conjunct(2, or_(and_(0 <= j, N.rx_queued[j], forall(0, rx_n, lambda k: implies(
               N.rx_queued[k], N.ring_pos(j) >= N.ring_pos(k)), "q")),
               and_(eq(j, -1), ~_lift(N.exists(0, rx_n, lambda k: N.rx_queued[k], "n"))))),
           "QueueMatchesCopyFrames"),
    # --- ENOBUFS --------------------------------------------------------------------------------------
    Mutant("overrun_ignores_no_enobufs", "an overrun congests the socket although NETLINK_NO_ENOBUFS is set",
           "6.5", "copy_full", replace_update("congested", Assign("congested", True)), "NoEnobufsSilences"),
    Mutant("overrun_raises_every_drop", "every overrun raises ENOBUFS again, not once per episode", "6.5",
           "alloc_full", replace_update("sk_err", Assign("sk_err", ite(N.no_enobufs, N.sk_err, True))),
           "EnobufsOncePerEpisode"),
    Mutant("enobufs_despite_no_enobufs", "an overrun raises ENOBUFS although NETLINK_NO_ENOBUFS is set", "6.5",
           "copy_full", replace_update("sk_err", Assign("sk_err", ite(N.congested, N.sk_err, True))),
           "EnobufsOncePerEpisode"),
    Mutant("no_enobufs_keeps_congestion", "setting NETLINK_NO_ENOBUFS leaves the socket CONGESTED", "6.5",
           "set_no_enobufs", replace_update("congested", None), "NoEnobufsSilences"),
    Mutant("lost_ack_silent", "a lost ACK does not raise ENOBUFS", "20", "ack_alloc_failed",
           replace_update("sk_err", None), "NoSilentLoss"),
    # --- poll -----------------------------------------------------------------------------------------
    Mutant("pollerr_ignores_enobufs", "POLLERR is never set", "7", "poll", replace_conjunct(1, eq(N.rerr, False)),
           "PollErrMeansEnobufs"),
    Mutant("dump_space_uses_frame_nr", "dump_space subtracts frame_nr past the end instead of frame_max", "10",
           "poll", replace_conjunct(2, implies(N.dump_running, ~_lift(_dump_space_frame_nr()))), "PollContinuesDumps"),
    # --- the TX walk ----------------------------------------------------------------------------------
    Mutant("tx_copy_keeps_frame_valid", "the TX walk copies a frame but leaves it VALID", "11.2", "tx_copy",
           replace_update("tx_status", None), "TxRingIsFillOrder"),
    Mutant("tx_reject_at_capacity", "nm_len equal to frame_size - 24 is rejected (>= for >)", "11.2", "tx_reject",
           replace_conjunct(3, N.tx_cap <= N.tx_len[tx_head]), "TxProgress"),
    Mutant("tx_done_early", "the walk ends at a VALID frame", "11.2", "tx_done", replace_conjunct(1, True),
           "TxProgress"),
    Mutant("tx_validate_rereads_len", "validation reads nm_len from the shared frame again", "12.1",
           "tx_validate", replace_update("tx_vlen", Assign("tx_vlen", N.tx_len[N.tx_cur])), "TxActsOnValidated"),
    Mutant("tx_copy_skips_validation", "the walk copies a frame and goes straight on to the next one", "11.2",
           "tx_copy", replace_update("tx_phase", None), "TxActsOnEveryFrameTaken"),
    Mutant("tx_act_keeps_walk_busy", "after acting on a frame the walk does not move on", "12.1", "tx_act",
           replace_update("tx_phase", None), "TxActsOnEveryFrameTaken"),
    Mutant("tx_copy_reads_next_len", "the walk reads nm_len of the frame after the head", "11.2", "tx_copy",
           replace_update("tx_plen", Assign("tx_plen", N.tx_len[N.nxt(tx_head, tx_n)])), "HeaderWithinFrame"),
    # --- congestion (rcv_wake) -------------------------------------------------------------------------
    Mutant("poll_keeps_congestion", "poll on a drained RX-ring socket leaves it CONGESTED", "7", "poll",
           replace_update("congested", None), "CongestionEndsWhenDrained"),
    Mutant("recvmsg_keeps_congestion", "recvmsg emptying the queue does not clear CONGESTED", "8", "recvmsg",
           replace_update("congested", None), "CongestionEndsWhenDrained"),
    Mutant("recvmsg_before_enobufs", "recvmsg returns a queued message before the pending ENOBUFS", "8",
           "recvmsg", replace_conjunct(0, True), "RecvmsgReportsInOrder"),
    Mutant("ack_loss_honours_no_enobufs", "a lost ACK raises ENOBUFS only without NETLINK_NO_ENOBUFS", "20",
           "ack_alloc_failed", replace_update("sk_err", Assign("sk_err", ite(N.no_enobufs, N.sk_err, True))),
           "NoSilentLoss"),
    # --- more RX frames ----------------------------------------------------------------------------------
    Mutant("copy_path_steps_on_skip", "the COPY path claims a SKIP frame at the cursor", "6.3, 9", "copy_claim",
           replace_conjunct(1, in_set(N.rx_status[rx_head], (U, S))), "KernelWritesOnlyOwnedFrames"),
    Mutant("copy_claims_next_frame", "the COPY path marks the frame after the cursor COPY", "6.3", "copy_claim",
           replace_update("rx_status", Store("rx_status", N.nxt(rx_head, rx_n), C)), "ClaimedFramesHoldMessages"),
    Mutant("alloc_size_off_by_one", "a message one byte larger than the frame's payload goes into the ring",
           "6.1", "alloc", replace_conjunct(0, N.size <= N.rx_cap + 1), "RingPathOnlyWhenItFits"),
    Mutant("abort_decrements_twice", "an aborted allocation drops the pending count twice", "6.4", "abort",
           replace_update("rx_pending", Assign("rx_pending", N.rx_pending - 2)), "PendingMatchesReserved"),
    Mutant("second_dump_starts", "a dump request starts a second dump while one runs", "10", "dump_begin",
           replace_conjunct(0, True), "OneDumpAtATime"),
    # --- the queue service --------------------------------------------------------------------------------
    Mutant("enqueue_reuses_id", "the under-lock enqueue does not advance id_sequence", "12.2", "queue_enqueue",
           replace_update("id_seq", None), "QueueRingIsIdOrder", system="queue", variant=UNDER_LOCK),
    Mutant("reader_cursor_stays", "the reader does not advance past the frame it read", "15", "read_frame",
           replace_update("user_cursor", None), "QueueRingIsIdOrder", system="queue", variant=UNDER_LOCK),
    Mutant("verdict_without_reading", "a batch verdict may name a packet the user has not read", "12.2",
           "verdict_batch", replace_conjunct(0, True), "BatchVerdictSound", system="queue", variant=UNDER_LOCK),
    Mutant("batch_verdict_plain_comparison", "a batch verdict compares ids as plain numbers (x <= m), not in "
           "serial arithmetic: across the wrap it skips the ids before 0, which leave the queue undecided",
           "12.2", "verdict_batch_wrap", replace_update("verdicted", None, nth=1), "NoPacketLeftUndecided",
           system="queue", variant=UNDER_LOCK),
    Mutant("batch_verdict_skips_head", "a batch verdict starts after the queue's head packet", "12.2",
           "verdict_batch", replace_update("verdicted", StoreRange("verdicted", "x", 0, V("m") + 1, or_(
               V("verdicted")[V("x")], V("q_head") < V("x")))), "NoPacketLeftUndecided", system="queue",
           variant=UNDER_LOCK),
    Mutant("id_sequence_not_u32", "++id_sequence does not wrap at 2^32", "12.2", "queue_enqueue",
           lambda a: dataclasses.replace(a, updates=tuple(
               Assign("id_seq", V("id_seq") + 1) if isinstance(u, Assign) and u.var == "id_seq" else u
               for u in a.updates)), "QueueIsSerialWindow", system="queue", variant=UNDER_LOCK),
    # --- the 3.10 zero-copy eligibility test ------------------------------------------------------------
    Mutant("zero_copy_with_two_mappings", "zero-copy allowed with two mappings (mapped > 1 not tested)",
           "11.3", "tx_claim", replace_conjunct(4, N.mapped <= 2), "ZeroCopyOnlyWhenExclusive",
           variant=Variant(tx_zero_copy=True)),
)


@pytest.mark.parametrize("mutant", ZOO, ids=[m.name for m in ZOO])
def test_spec_mutant_is_caught_with_a_cti(mutant):
    sysm = mutant.build()
    t0 = time.perf_counter()
    results = prove_system(sysm, lemmas=False, actions=[mutant.action], timeout_ms=DEFAULT_TIMEOUT_MS)
    took = time.perf_counter() - t0
    unknown = [r.line() for r in results if r.verdict is Verdict.UNKNOWN]
    assert not unknown, f"{mutant.name}: unknown is a miss: {unknown}"
    failed = [r for r in results if r.verdict is Verdict.FAILED]
    props = sorted({r.property for r in failed})
    assert mutant.caught_by in props, f"{mutant.name} ({mutant.breaks}) not caught by {mutant.caught_by}: {props}"
    r = next(x for x in failed if x.property == mutant.caught_by)
    text = r.text()
    assert mutant.caught_by in text.splitlines()[0] and f"counterexample to induction: {mutant.action}(" in text
    assert len(text.splitlines()) <= 60, text
    print(f"{mutant.name}: FAILED {props} in {took:.2f} s")


# --- ordering barriers (section 6.6): the status-word handoff under weak memory ---------------------
def _drop_fence(kind: str) -> Callable[[tuple], tuple]:
    return lambda ops: tuple(o for o in ops if not (o.kind == "fence" and o.order == kind))


def _weaken_status_access(kind: str, order: str = "plain") -> Callable[[tuple], tuple]:
    """The side's ``kind`` (load or store) of nm_status done with ``order`` (plain: no ordering)."""
    return lambda ops: tuple(dataclasses.replace(o, order=order, api="plain" if order == "plain" else o.api)
                             if o.kind == kind and o.loc == "nm_status" else o for o in ops)


@dataclass(frozen=True)
class OrderingMutant:
    """A barrier removed (or an access weakened) on one side of a handoff that is proved: the
    forbidden outcome must become reachable on ``target``, with an execution to show."""

    name: str
    breaks: str
    configuration: str
    side: int
    change: Callable[[tuple], tuple] = field(repr=False)
    target: str = "aarch64"


ORDERING_ZOO: tuple[OrderingMutant, ...] = (
    OrderingMutant("publish_without_smp_mb", "the kernel publishes VALID without the full barrier before it",
                   "rx_publish/kernel-4.4+user-acquire", 0, _drop_fence("smp_mb")),
    OrderingMutant("user_reads_status_plainly", "the user reads nm_status without acquire, then the payload",
                   "rx_publish/impl+user-acquire", 1, _weaken_status_access("load")),
    OrderingMutant("impl_publishes_plainly", "the implementation stores VALID with a plain store",
                   "rx_publish/impl+user-acquire", 0, _weaken_status_access("store")),
    OrderingMutant("user_hands_tx_frame_plainly", "the user stores the TX VALID with a plain store",
                   "tx_handover/impl+impl", 0, _weaken_status_access("store")),
    OrderingMutant("tx_walk_reads_status_plainly", "the kernel's TX walk reads nm_status without acquire",
                   "tx_handover/impl+impl", 1, _weaken_status_access("load")),
    OrderingMutant("tx_release_without_smp_mb", "the kernel releases a copied TX frame without the barrier "
                   "(its copy may read the user's next message)", "tx_reuse/kernel-4.4+impl-send", 0,
                   _drop_fence("smp_mb")),
    OrderingMutant("rx_release_plainly", "the user hands an RX frame back (UNUSED) with a plain store",
                   "rx_reuse/impl+impl-alloc", 0, _weaken_status_access("store")),
    OrderingMutant("sleeper_flag_without_seq_cst", "the reader announces it sleeps with a release store only "
                   "(the waker misses it: a lost wake-up)", "rx_wakeup/impl+impl", 0,
                   lambda ops: tuple(dataclasses.replace(o, order="release") if o.kind == "store"
                                     and o.loc == "rx_wait" else o for o in ops), target="x86-64"),
)


@pytest.mark.parametrize("mutant", ORDERING_ZOO, ids=[m.name for m in ORDERING_ZOO])
def test_ordering_mutant_gives_a_counterexample(mutant):
    from nlmmap.spec.execgraph import format_execution
    from nlmmap.spec.litmus import TARGETS, compile_program
    from nlmmap.spec.memory_model import MODELS, check
    from nlmmap.spec.ordering import configuration, expected_results

    cfg = configuration(mutant.configuration)
    model = MODELS[TARGETS[mutant.target]]
    assert expected_results()["obligations"][cfg.id][mutant.target] == "proved"  # the unmutated handoff holds
    assert check(compile_program(cfg.source(), mutant.target), model).allowed is False
    sides = list(cfg.sides)
    sides[mutant.side] = dataclasses.replace(sides[mutant.side], ops=mutant.change(sides[mutant.side].ops))
    assert sides[mutant.side].ops != cfg.sides[mutant.side].ops, "the mutant changes nothing"
    res = check(compile_program(dataclasses.replace(cfg, sides=tuple(sides)).source(), mutant.target), model)
    assert res.allowed is True, f"{mutant.name} ({mutant.breaks}): {res.text} {res.reason}"
    assert res.execution is not None and format_execution(res.execution).strip()
