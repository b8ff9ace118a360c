"""Hypothesis properties of the reference model over random action sequences.

The machine plays both the kernel's subsystems (ring and copy deliveries, split alloc/publish,
aborts, ACK requests) and the user, including the adversary who writes any bytes into the
mapping at any time. After every step: the spec's invariants hold (all of them while the user is
well-behaved, the kernel-side ones always), and, checked independently from memory snapshots,
the kernel changed only frames it was allowed to touch.
"""

import struct

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from nlmmap.model import Kernel, ModelConfig
from nlmmap.model.queue import QueueService
from nlmmap.spec.abi import NETLINK_NO_ENOBUFS, NETLINK_RX_RING, NETLINK_TX_RING, RingRequest, Status
from nlmmap.spec.errors import NetlinkError
from nlmmap.spec.netlink import NLM_F_ACK, NLM_F_REQUEST, build_message
from nlmmap.spec.protocol import Variant
from nlmmap.spec.system import violated_invariants

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
        self.s = Kernel(ModelConfig(check_invariants="always")).socket()
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
        head0 = s.g["rx_head"]
        owned = [i for i, n in enumerate(s.g["rx_owned"]) if n]
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
            assert e.errno == "EAGAIN" and self.s.g["congested"]

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
        assert "POLLOUT" in mask and ("POLLERR" in mask) == self.s.g["sk_err"]

    @rule(bufsize=st.sampled_from([0, 16, 4096]))
    def recvmsg(self, bufsize):
        try:
            data, trunc = self.s.recvmsg(bufsize)
            assert len(data) <= bufsize
        except NetlinkError as e:
            assert e.errno in ("EAGAIN", "ENOBUFS")

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
            assert s.statuses("tx")[s.g["tx_head"]] == V

    # ---- invariants -------------------------------------------------------------------------------
    @invariant()
    def spec_invariants_hold(self):
        s = self.s
        user = "any" if s.adversarial else "well-behaved"
        assert violated_invariants(s.system, s.view, user=user) == []

    @invariant()
    def no_silent_loss_accounting(self):
        g = self.s.g
        assert g["sent"] == g["in_ring"] + g["rq_len"] + g["consumed"] + g["dropped"] + g["aborted"] + g["purged"]
        assert g["dropped"] == g["drops"] and g["unsignalled_drops"] == 0

    @invariant()
    def heads_in_range(self):
        s = self.s
        assert 0 <= s.g["rx_head"] < s.layout.rx.frame_nr and 0 <= s.g["tx_head"] < s.layout.tx.frame_nr


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
    """A model whose publish bypasses the spec (sets VALID but forgets pending) is caught at once."""
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
        assert "PendingMatchesReserved" in str(e)
    else:
        raise AssertionError("a publish that bypasses the spec went unnoticed")
