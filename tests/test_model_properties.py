"""Hypothesis properties of the reference model over random action sequences.

The machine plays both the kernel's subsystems (ring and copy deliveries, split alloc/publish,
aborts, ACK requests) and the user, including the adversary who writes any bytes into the
mapping at any time. After every step: the spec's invariants hold (all of them while the user is
well-behaved, the kernel-side ones always), and, checked independently from memory snapshots,
the kernel changed only frames it was allowed to touch.
"""

import struct

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from nlmmap.model import Kernel, ModelConfig
from nlmmap.model.queue import QueueService
from nlmmap.spec.abi import NETLINK_NO_ENOBUFS, NETLINK_RX_RING, NETLINK_TX_RING, RingRequest, Status
from nlmmap.spec.errors import NetlinkError
from nlmmap.spec.netlink import NLM_F_ACK, NLM_F_REQUEST, build_message
from nlmmap.spec.protocol import Variant

U, R, V, C, S = (int(x) for x in Status)
u32 = struct.Struct("=I")


class SocketMachine(RuleBasedStateMachine):
    """Random traffic, user behaviour and adversarial writes against one model socket."""

    @initialize(frames=st.sampled_from([1, 2, 3, 4, 8]), frame_size=st.sampled_from([64, 128, 512]),
                tx_frames=st.sampled_from([1, 2, 4]))
    def setup(self, frames, frame_size, tx_frames):
        per_block = 4096 // frame_size
        blocks = -(-frames // per_block)
        self.rx_req = RingRequest(4096, blocks, frame_size, per_block * blocks)
        self.steps = []  # every step the kernel reports, for the frame-change account below
        self.s = Kernel(ModelConfig(check_invariants="always"), on_step=lambda h, st: self.steps.append(st)).socket()
        self.s.setsockopt(NETLINK_RX_RING, self.rx_req.pack())
        self.s.setsockopt(NETLINK_TX_RING, RingRequest(4096, 1, 4096 // tx_frames, tx_frames).pack())
        self.s.mmap(self.s.layout.size)
        self.claimed: list[int] = []
        self.adversary = False

    # ---- kernel side -------------------------------------------------------------------------------
    def _kernel(self, call):
        """Run a kernel operation; check that only allowed frames changed."""
        s = self.s
        before = s.peek(0, s.layout.size)
        st_before = s.statuses("rx")
        head0 = s.spec_state["rx_head"]
        owned = [i for i, n in enumerate(s.spec_state["rx_owned"]) if n]
        result = call()
        after = s.peek(0, s.layout.size)
        g = s.layout.rx
        for i in range(g.frame_nr):
            o = g.frame_offset(i)
            if before[o:o + g.frame_size] != after[o:o + g.frame_size]:
                allowed = i in owned or st_before[i] == U
                assert allowed, f"kernel wrote RX frame {i} (status {st_before[i]}, head {head0}, owned {owned})"
        return result

    @rule(size=st.integers(0, 600), path=st.sampled_from(["ring", "copy"]), group=st.sampled_from([0, 0, 5]))
    def deliver(self, size, path, group):
        try:
            self._kernel(lambda: self.s.deliver(bytes([size & 0xFF]) * size, path, group if path == "copy" else 0))
        except NetlinkError as e:
            assert e.errno == "EAGAIN" and self.s.spec_state["congested"]

    @rule(size=st.integers(0, 100))
    def kernel_alloc(self, size):
        if self.s.fits(size):
            j = self._kernel(lambda: self.s.ring_alloc(size))
            if j is not None:
                self.claimed.append(j)

    @precondition(lambda self: self.claimed)
    @rule(which=st.integers(0, 10), abort=st.booleans())
    def kernel_publish(self, which, abort):
        j = self.claimed.pop(which % len(self.claimed))
        if abort:
            self._kernel(lambda: self.s.ring_abort(j))
        else:
            self._kernel(lambda: self.s.ring_publish(j, b"p" * 4))

    @rule(ack=st.booleans(), type_=st.sampled_from([0x1, 0x3, 0x20, 0x100]))
    def request_to_kernel(self, ack, type_):
        msg = build_message(type_, NLM_F_REQUEST | (NLM_F_ACK if ack else 0), 1, 0, b"\1\2\3\4")
        assert self._kernel(lambda: self.s.sendmsg(msg)) == len(msg)

    # ---- user side ---------------------------------------------------------------------------------
    @rule(i=st.integers(0, 63), action=st.sampled_from(["release", "skip"]))
    def user_frame(self, i, action):
        s = self.s
        i %= s.layout.rx.frame_nr
        cur = s.statuses("rx")[i]
        if action == "release" and cur in (V, C, S):
            s.poke(s.layout.frame_offset("rx", i), u32.pack(U))
        elif action == "skip" and cur == V:
            s.poke(s.layout.frame_offset("rx", i), u32.pack(S))

    @rule(offset=st.integers(0, 1 << 16), data=st.binary(min_size=1, max_size=40))
    def adversary_writes(self, offset, data):
        self.adversary = True
        s = self.s
        offset %= s.layout.size - len(data) + 1
        s.poke(offset, data)

    @rule()
    def poll(self):
        mask = self.s.poll()
        assert "POLLOUT" in mask and ("POLLERR" in mask) == self.s.spec_state["sk_err"]

    @rule(bufsize=st.sampled_from([0, 16, 4096]))
    def recvmsg(self, bufsize):
        g = self.s.spec_state
        want = "ENOBUFS" if g["sk_err"] else "EAGAIN" if g["rq_len"] == 0 else None  # section 8, in this order
        queued = g["rq_len"]
        try:
            data, trunc = self.s.recvmsg(bufsize)
            got = None
            assert len(data) <= bufsize and g["rq_len"] == queued - 1
        except NetlinkError as e:
            got = e.errno
            assert g["rq_len"] == queued and not g["sk_err"]  # the error is reported once
        assert got == want

    @rule(on=st.booleans())
    def no_enobufs(self, on):
        self.s.setsockopt(NETLINK_NO_ENOBUFS, u32.pack(int(on)))

    @rule(i=st.integers(0, 3), size=st.integers(0, 2100), to=st.sampled_from(["kernel", "peer"]))
    def fill_and_kick(self, i, size, to):
        s = self.s
        i %= s.layout.tx.frame_nr
        off = s.layout.frame_offset("tx", i)
        cap = s.layout.tx.frame_size - 24
        if s.statuses("tx")[i] == U:
            body = build_message(0x1, NLM_F_REQUEST | NLM_F_ACK, 2, 0)[: min(size, cap)]
            s.poke(off + 24, body)
            s.poke(off + 4, u32.pack(size))
            s.poke(off, u32.pack(V))
        try:
            n = self._kernel(lambda: s.sendmsg(None, to))
            assert n >= 0
        except NetlinkError as e:
            assert e.errno == "EINVAL"
            assert s.statuses("tx")[s.spec_state["tx_head"]] == V

    # ---- invariants -------------------------------------------------------------------------------
    # The spec's invariants are checked by the model itself after every spec action, not only after
    # each rule (check_invariants="always"; test_model_checks_catch_a_broken_kernel shows it works).
    @invariant()
    def no_silent_loss_accounting(self):
        g = self.s.spec_state
        assert g["sent"] == g["in_ring"] + g["rq_len"] + g["consumed"] + g["drops"] + g["aborted"] + g["purged"]
        assert not g["congested"] or g["sk_err"] or g["enobufs_told"]  # a drop is signalled (6.5)

    @invariant()
    def every_status_change_is_a_reported_step(self):
        """Replaying the frame changes the observer got, from all-UNUSED rings, gives the statuses
        in memory: no status word changes outside a reported spec action."""
        s = self.s
        shadow = {"rx": [U] * s.layout.rx.frame_nr, "tx": [U] * s.layout.tx.frame_nr}
        for step in self.steps:
            for f in step.frames:
                assert shadow[f.ring][f.index] == f.status_before, (step, shadow)
                shadow[f.ring][f.index] = f.status_after
        assert shadow == {"rx": s.statuses("rx"), "tx": s.statuses("tx")}
        assert self.steps == s.trace

    @invariant()
    def heads_in_range(self):
        s = self.s
        g = s.spec_state
        assert 0 <= g["rx_head"] < s.layout.rx.frame_nr and 0 <= g["tx_head"] < s.layout.tx.frame_nr


TestSocketMachine = SocketMachine.TestCase


class QueueMachine(RuleBasedStateMachine):
    """Two or three CPUs queue packets; a reader reads in ring order and sends batch verdicts.
    With the under-lock fix no batch verdict ever covers an unseen packet."""

    @initialize(cpus=st.integers(1, 3))
    def setup(self, cpus):
        self.cpus = cpus
        self.s = Kernel(ModelConfig(variant=Variant(queue_alloc_outside_lock=False))).socket()
        self.s.setsockopt(NETLINK_RX_RING, RingRequest(4096, 1, 512, 8).pack())
        self.s.mmap(4096)
        self.q = QueueService(self.s)
        self.read: list[int] = []

    @rule(cpu=st.integers(0, 2), payload=st.binary(max_size=50))
    def enqueue(self, cpu, payload):
        self.q.enqueue(cpu % self.cpus, payload)

    @rule()
    def read(self):
        r = self.q.read_next()
        if r is not None:
            self.read.append(r[0])

    @precondition(lambda self: self.read)
    @rule(k=st.integers(0, 10))
    def batch_verdict(self, k):
        pid = self.read[k % len(self.read)]
        try:
            self.q.verdict_batch(pid)
        except NetlinkError as e:
            assert e.errno == "ENOENT"

    @invariant()
    def batch_verdicts_sound(self):
        assert self.q.unseen_decided == [] and self.q.violations == []
        assert self.read == sorted(self.read)  # ring order == id order under the lock


TestQueueMachine = QueueMachine.TestCase


def test_s12_2_mainline_queue_interleaving_breaks_batch_verdict():
    s = Kernel().socket()  # default: queue_alloc_outside_lock (mainline)
    s.setsockopt(NETLINK_RX_RING, RingRequest(4096, 1, 512, 8).pack())
    s.mmap(4096)
    q = QueueService(s)
    q.alloc(0, b"A")  # CPU 0 claims frame 0
    q.alloc(1, b"B")  # CPU 1 claims frame 1
    assert (q.send(1), q.send(0)) == (1, 2)  # CPU 1 takes the lock first: frame 1 gets id 1
    assert q.read_next()[0] == 2  # the reader sees id 2 first (frame 0)
    assert q.verdict_batch(2) == [1, 2]  # ... and its batch verdict decides packet 1, unseen
    assert q.unseen_decided == [1] and q.violations[0][0] == "BatchVerdictSound"


def test_model_checks_catch_a_broken_kernel(monkeypatch):
    """A model whose publish bypasses the spec (sets VALID but forgets pending) is caught at once: the
    next poll would report a VALID frame the kernel never handed over."""
    from nlmmap.model import ModelInvariantError, ModelSocket

    def bad_publish(self, j, data, **kw):
        o = self.rx.off(j)
        self.rx.mem[o:o + 4] = u32.pack(V)

    monkeypatch.setattr(ModelSocket, "ring_publish", bad_publish)
    s = Kernel().socket()
    s.setsockopt(NETLINK_RX_RING, RingRequest(4096, 1, 1024, 4).pack())
    s.mmap(4096)
    try:
        s.deliver(b"x", "ring")
        s.poll()
    except ModelInvariantError as e:
        assert "PollInMeansReadable" in str(e)
    else:
        raise AssertionError("a publish that bypasses the spec went unnoticed")


# ---- the model's one mechanism ----------------------------------------------------------------------
def _mapped_socket(**cfg):
    s = Kernel(ModelConfig(**cfg)).socket()
    s.setsockopt(NETLINK_RX_RING, RingRequest(4096, 1, 1024, 4).pack())
    s.setsockopt(NETLINK_TX_RING, RingRequest(4096, 1, 2048, 2).pack())
    s.mmap(8192)
    return s


def test_every_event_names_actions_of_the_spec():
    from nlmmap.model import rx, tx, user_memory
    from nlmmap.spec import family
    from nlmmap.spec.protocol import socket_system

    names = {a.name for v in (Variant(), Variant(tx_zero_copy=True), Variant(skip_broken=True))
             for a in socket_system(v).actions}
    events = (rx.RING_ALLOC + rx.SENDSKB + rx.RECVMSG + rx.ACK_LOST + tx.TX_NEXT + tx.TX_DONE
              + user_memory.RX_STATUS_WRITES + user_memory.TX_FRAME_WRITES
              + tuple(family.admission_action(from_kernel=k, broadcast=b) for k in (0, 1) for b in (0, 1)))
    assert set(events) <= names, sorted(set(events) - names)


def test_more_or_fewer_than_one_enabled_candidate_is_a_model_bug():
    from nlmmap.model import ModelInvariantError

    s = _mapped_socket()
    s.deliver(b"v", "ring")  # frame 0 VALID: both a release and the adversary's write are enabled
    with pytest.raises(ModelInvariantError, match="2 of the candidate actions"):
        s.select(("release_frame", "write_status"), j=0, v=U)
    with pytest.raises(ModelInvariantError, match="0 of the candidate actions"):
        s.select(("skip_frame",), j=1)  # frame 1 is UNUSED: not enabled, and not optional
    assert s.select(("skip_frame",), optional=True, j=1) is None
    assert s.select(("release_frame", "skip_frame"), j=0, accept=lambda a, p: a.name == "skip_frame")[0].name \
        == "skip_frame"


def test_a_disabled_spec_action_is_action_disabled_never_an_errno():
    from nlmmap.model import ActionDisabled
    from nlmmap.model.adapter import ModelBackend
    from nlmmap.spec.adapter import handle_request

    s = _mapped_socket()
    with pytest.raises(ActionDisabled) as e:
        s.step("publish", j=0, len=1)  # the kernel holds no claim on frame 0
    assert not isinstance(e.value, NetlinkError) and "publish" in str(e.value)
    b = ModelBackend()
    sock = b.socket()[0]
    b.kernel.get(sock).recvmsg = lambda *a: b.kernel.get(sock).step("recvmsg", j=-1)  # a model bug: rq is empty
    ans = handle_request(b, {"id": 1, "op": "recvmsg", "sock": sock, "bufsize": 10})
    assert ans["errno"] == "EIO" and "ActionDisabled" in ans["message"]  # reported as a kernel-side bug


def test_spec_state_is_read_only_and_names_the_known_variables():
    s = _mapped_socket()
    g = s.spec_state
    assert g["rx_frame_nr"] == 4 and g["rx_status"] == (U, U, U, U) and set(g) == {v.name for v in s.system.state}
    with pytest.raises(KeyError, match="rx_head"):
        g["rx_haed"]
    with pytest.raises(TypeError):
        g["rx_head"] = 3  # type: ignore[index]
    s.deliver(b"v", "ring")
    assert g["rx_head"] == 1 and g["rx_status"][0] == V  # a live view


def test_refusal_errnos_come_from_the_spec():
    s = _mapped_socket()
    munmap = s.system.action("munmap")
    s.munmap()
    with pytest.raises(NetlinkError) as e:
        s.munmap()
    assert e.value.errno == munmap.refusal and s.trace[-1].action == "munmap"  # the refused call took no step
