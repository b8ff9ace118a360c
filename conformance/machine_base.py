"""The plumbing of the conformance state machine (:mod:`.machine`): the rules' features
(:data:`RULE_FEATURES`), what every example of a run shares (:class:`RunContext`), the
precondition decorator :func:`needs`, and :class:`MachineBase` (steps, the guard that compares the
memory after every step, the model socket's state for preconditions, ``target()`` observations)."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition

from nlmmap.spec.abi import NL_MMAP_HDRLEN, NM_LEN_OFFSET, NM_STATUS_OFFSET, Status

from . import payloads as P
from .session import Session, SockPair

__all__ = ["MachineBase", "RULE_FEATURES", "RunContext", "needs"]

UNUSED, RESERVED, VALID, COPY, SKIP = (int(s) for s in Status)
_U32 = struct.Struct("=I")
_LABELS = ("UNUSED", "RESERVED", "VALID", "COPY", "SKIP", "OTHER")
_VALUES = {s.name: int(s) for s in Status}


def _label(v: int) -> str:
    try:
        return Status(v).name
    except ValueError:
        return "OTHER"


def _no_skip(blob: bytes, off: int, lay: Any) -> bytes:
    """``blob`` with any status word it would set to SKIP changed to 5."""
    b = bytearray(blob)
    for f in lay.frames():
        a = f.offset - off
        if 0 <= a and a + 4 <= len(b) and _U32.unpack_from(b, a)[0] == SKIP:
            _U32.pack_into(b, a, 5)
    return bytes(b)


#: Rule -> the SUT features it needs (all of them). Rules whose features are missing are not run
#: and the report lists them with the missing feature.
RULE_FEATURES: dict[str, tuple[str, ...]] = {
    "open_socket": (), "set_ring": (), "replace_ring": (), "mmap_rings": (), "munmap_rings": ("op:munmap",),
    "deliver_ring": ("deliver_ring",), "deliver_copy": ("deliver_copy",),
    "deliver_group": ("deliver_copy", "multicast"), "multicast_members": ("deliver_copy", "multicast"),
    "release_frame": ("rx_ring",), "read_ring": ("rx_ring",), "skip_frame": ("rx_ring", "skip"),
    "skip_at_cursor": ("rx_ring", "skip"),
    "recvmsg": (), "fill_tx": ("tx_ring",), "kick": (), "send": (), "received": (), "poll": (),
    "set_no_enobufs": ("no_enobufs",), "set_option": (), "close_socket": (), "scribble": (), "write_status": (),
    "pause_and_rewrite": ("tx_ring", "pause_after_validate"), "dump": ("dump",),
}


class BudgetSpent(BaseException):
    """Ends a batch at an example's end once the run's steps are spent, or a failure was seen and
    is not to be shrunk: Hypothesis' target phase runs on after ``max_examples`` (and after a
    failure, until its hill climbs end). A BaseException, so Hypothesis passes it through."""


class RunContext:
    """What every example of one run shares: the session, counters, the failure seen last."""

    def __init__(self, session: Session):
        self.session = session
        self.steps = 0
        self.examples = 0
        self.rule_counts: dict[str, int] = {}
        self.paused_walks = 0  # TX walks that paused after validation and were rewritten (toctou_pause)
        self.last_failure: tuple[BaseException, list[str]] | None = None
        self.targets: dict[str, float] = {}
        self.first_failure: tuple[int, str] | None = None  # (steps run when it was seen, check)
        self.max_sockets = 2
        self.rule_cost: dict[str, list] = {}  # rule -> [seconds, requests] (what each rule costs)
        self.progress: Any = None  # a stream for a line every ``progress_every`` steps (long runs)
        self.progress_every = 2000
        self.budget = 0
        self.shrink = True  # False: the first failure ends the run unshrunk
        self._next_report = self.progress_every
        self._t0 = time.perf_counter()

    def tick(self) -> None:
        """End of an example: a progress line when another ``progress_every`` steps are done."""
        if self.progress is None or self.steps < self._next_report:
            return
        self._next_report = (self.steps // self.progress_every + 1) * self.progress_every
        t = time.perf_counter() - self._t0
        self.progress.write(f"    {self.steps}/{self.budget or '?'} steps, {self.examples} examples, {t:.0f} s "
                            f"({self.steps / max(t, 1e-9):.0f} steps/s)\n")
        self.progress.flush()

    def budget_spent(self) -> bool:
        """The batch should end: a failure was seen and is not to be shrunk, or none was and the
        run's steps are spent (a failure being shrunk runs on, bounded by the shrink time)."""
        if self.first_failure is not None:
            return not self.shrink
        return bool(self.budget) and self.steps >= self.budget

    def has(self, *features: str) -> bool:
        return all(f in self.session.features for f in features)

    def skipped_rules(self) -> dict[str, str]:
        out = {}
        for name, feats in RULE_FEATURES.items():
            missing = [f for f in feats if f not in self.session.features]
            if missing:
                out[name] = "SUT lacks " + ", ".join(missing)
        return out


def needs(name: str, when: Callable[[Any], bool] | None = None):
    """Precondition: the rule's features, then ``when(machine)``."""
    feats = RULE_FEATURES[name]

    def pre(self: MachineBase) -> bool:
        if self.dead or not self.ctx.has(*feats):
            return False
        return when(self) if when is not None else True
    return precondition(pre)


class MachineBase(RuleBasedStateMachine):
    """The user (and the adversary) against the SUT, with the model's answers as the truth."""

    ctx: RunContext  # set on the subclass machine_for() builds

    def __init__(self) -> None:
        super().__init__()
        self.s: Session = self.ctx.session
        self.pairs: list[SockPair] = []
        self.dead = False
        self.n = 0
        self.poll_rate = 0
        self.seen = {"rx_full": 0.0, "skip_frames": 0.0, "wraps": 0.0, "drops": 0.0, "tx_error_after_sent": 0.0,
                     "skip_at_cursor": 0.0}
        self.ctx.examples += 1
        self.s.rec.reset(self.s.hello_lines)
        if self.s.log is not None:
            self.s.log.note(f"example {self.ctx.examples}")
        self.s.coverage.recent.clear()
        self.s.close_all()  # sockets a failed example left open
        self.s.pairs = []

    # ---- plumbing -------------------------------------------------------------------------------
    def _step(self, name: str, detail: str = "") -> None:
        self.n += 1
        self.ctx.steps += 1
        self.ctx.rule_counts[name] = self.ctx.rule_counts.get(name, 0) + 1
        self.s.step, self.s.rule = self.n, name
        self.s.rec.case([f"step {self.n}: {name}" + (f" {detail}" if detail else "")])
        if self.s.log is not None:
            self.s.log.case([f"example {self.ctx.examples} step {self.n}: {name}" + (f" {detail}" if detail else "")])
        self._t0, self._r0 = time.perf_counter(), self.s.stats.requests

    def _guard(self, data: Any, fn: Callable[[], None]) -> None:
        try:
            fn()
            if self.poll_rate and self.open_pairs() and \
                    data.draw(st.integers(0, 9), label="then poll") < self.poll_rate:
                p = self._pick(data, self.open_pairs())
                if "POLLERR" in self.s.exchange("poll", p).get("revents", ()):  # a user's loop polls often,
                    self.s.exchange("recvmsg", p, bufsize=4096, dontwait=True)  # and fetches the error it shows
            for p in self.open_pairs():
                self.s.check_memory(p)
            self._observe()
        except BaseException as e:
            self._failed(e)
            raise
        finally:
            cost = self.ctx.rule_cost.setdefault(self.s.rule, [0.0, 0])
            cost[0] += time.perf_counter() - self._t0
            cost[1] += self.s.stats.requests - self._r0

    def _failed(self, e: BaseException) -> None:
        self.dead = True
        if not isinstance(e, Exception):  # Hypothesis' StopTest (its data ran out), an interrupt: no failure
            return
        self.ctx.last_failure = (e, list(self.s.rec.lines))
        if self.ctx.first_failure is None:
            self.ctx.first_failure = (self.ctx.steps, getattr(e, "check", type(e).__name__))

    def open_pairs(self) -> list[SockPair]:
        return [p for p in self.pairs if not p.closed]

    def ms(self, p: SockPair) -> Any:
        return self.s.msock(p)

    def mapped(self, p: SockPair) -> bool:
        return not p.closed and p.mapped and self.ms(p).spec_state["mapped"] > 0

    def _pick(self, data: Any, pairs: list[SockPair]) -> SockPair:
        return pairs[0] if len(pairs) == 1 else data.draw(st.sampled_from(pairs), label="sock")

    def with_rx(self) -> list[SockPair]:
        return [p for p in self.open_pairs() if self.mapped(p) and self.ms(p).rx is not None]

    def with_tx(self) -> list[SockPair]:
        return [p for p in self.open_pairs() if self.mapped(p) and self.ms(p).tx is not None]

    def rx_frames(self, p: SockPair, statuses: tuple[int, ...]) -> list[int]:
        return [i for i, v in enumerate(self.ms(p).statuses("rx")) if v in statuses]

    def _observe(self) -> None:
        for p in self.open_pairs():
            m = self.ms(p)
            if m.rx is not None:
                st_ = m.statuses("rx")
                n = len(st_)
                self.seen["rx_full"] = max(self.seen["rx_full"], sum(v != UNUSED for v in st_) / n)
                self.seen["skip_frames"] = max(self.seen["skip_frames"], sum(v == SKIP for v in st_) / n)
                self.seen["wraps"] = max(self.seen["wraps"], m.spec_state["claims"] / n)
                # graded, for target(): a SKIP frame, one at the kernel's cursor, and with a free frame
                # after it (where an allocation must step over the SKIP run)
                score = 0.0
                if SKIP in st_:
                    score = 1.0
                    if st_[m.spec_state["rx_head"]] == SKIP:
                        score = 2.0 + (UNUSED in st_)
                self.seen["skip_at_cursor"] = max(self.seen["skip_at_cursor"], score)
            self.seen["drops"] = max(self.seen["drops"], min(1.0, float(m.spec_state["drops"])))  # congestion reached

    def read_frames(self, p: SockPair, limit: int, *, keep: int = 0, bufsize: int = 65536) -> int:
        """The well-behaved reader: from its cursor, in ring order, read each VALID frame (header,
        then nm_len bytes) and release it (or, 1 in ``keep``, SKIP it), fetch each COPY frame's
        message with recvmsg and release it, release SKIP frames; stop at the first frame the kernel
        owns or after ``limit`` frames. Returns the frames it went past."""
        m = self.ms(p)
        if m.rx is None:
            return 0
        n, lay, cap = m.rx.geom.frame_nr, m.layout, m.rx.geom.payload_capacity
        p.cursor %= n
        k = 0
        for k in range(min(limit, n)):
            off = lay.frame_offset("rx", p.cursor)
            hdr = self.s.peek(p, off, NL_MMAP_HDRLEN)
            status, ln = _U32.unpack_from(hdr, NM_STATUS_OFFSET)[0], min(_U32.unpack_from(hdr, NM_LEN_OFFSET)[0], cap)
            if status == VALID:
                if ln:
                    self.s.peek(p, off + NL_MMAP_HDRLEN, ln)
                self.s.poke(p, off, _U32.pack(SKIP if keep and k % keep == 0 else UNUSED))
            elif status == COPY:
                self.s.exchange("recvmsg", p, bufsize=bufsize, dontwait=True)
                self.s.poke(p, off, _U32.pack(UNUSED))
            elif status == SKIP:
                self.s.poke(p, off, _U32.pack(UNUSED))
            else:
                return k
            p.cursor = (p.cursor + 1) % n
        return k + 1

    def open_socket_now(self, data: Any) -> SockPair:
        """Open a socket on both sides and, mostly, configure it (rings, mmap)."""
        p = self.s.open_socket()
        self.pairs.append(p)
        if data.draw(st.integers(0, 9), label="configure (9: leave unconfigured)") < 9:
            self._configure(data, p)
        return p

    def _configure(self, data: Any, p: SockPair) -> None:
        menu = P.geometry_menu(self.s.page_size)
        rings = data.draw(st.sampled_from([("rx", "tx"), ("rx", "tx"), ("rx",), ("tx",), ("rx", "tx")]), label="rings")
        size = 0
        for r in rings:
            if not self.ctx.has(f"{r}_ring"):
                continue
            g = data.draw(st.sampled_from(menu), label=f"{r} geometry")
            opt = "NETLINK_RX_RING" if r == "rx" else "NETLINK_TX_RING"
            if self.s.exchange("setsockopt", p, option=opt, optval=g.pack().hex())["ok"]:
                size += g.block_size * g.block_nr
        if size and data.draw(st.integers(0, 7), label="map (7: not yet)") < 7:
            self._mmap(p, size, 0)

    def _mmap(self, p: SockPair, length: int, offset: int) -> dict:
        exp = self.s.exchange("mmap", p, length=length, offset=offset)
        if exp["ok"]:
            self.s.after_mmap(p, exp, self.s.last_got.get("path"))
        return exp

