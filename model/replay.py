"""Replay an ITF trace of the queue service on the byte-level reference model.

``nlmmap replay --on model TRACE.itf.json``: the trace's actions become calls on a real
:class:`~nlmmap.model.queue.QueueService` over a model socket (frames as bytes, packet messages
built and parsed, verdicts applied to the queue list), and the outcome is read off the model:
packets that got a verdict although the reader never saw them. Socket traces are replayed on the
spec's interpreter only (``--on spec``): BMC gives frames symbolic capacities (a few bytes) that
no real ring geometry has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nlmmap.spec.abi import NETLINK_RX_RING, RingRequest
from nlmmap.spec.bmc import system_from_meta
from nlmmap.spec.errors import NetlinkError
from nlmmap.spec.itf import decode_value
from nlmmap.spec.protocol import Variant

from .queue import QueueService
from .socket import Kernel, ModelConfig

__all__ = ["ModelReplay", "replay_on_model"]


@dataclass
class ModelReplay:
    """What the model did with the trace."""

    expected: str | None
    steps: int
    violations: list[tuple[str, str]] = field(default_factory=list)
    unseen_decided: list[int] = field(default_factory=list)
    mismatches: list[tuple[int, str]] = field(default_factory=list)

    @property
    def reproduced(self) -> bool:
        """The model shows the trace's violation, and its ring matched the trace at every step."""
        return any(n == self.expected for n, _ in self.violations) and not self.mismatches

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for ``--json``."""
        return {"tool": "nlmmap replay", "on": "model", "expected": self.expected, "reproduced": self.reproduced,
                "steps": self.steps, "violations": [{"property": n, "action": a} for n, a in self.violations],
                "unseen_decided": self.unseen_decided,
                "mismatches": [{"step": i, "variable": v} for i, v in self.mismatches]}


def _initial_values(system: Any) -> dict[str, Any]:
    """The integer values the system's ``init`` fixes with a conjunct ``x = c``."""
    from nlmmap.spec.expr import Const, Op, Var

    def conjuncts(e: Any) -> list[Any]:
        return [c for a in e.args for c in conjuncts(a)] if isinstance(e, Op) and e.op == "and" else [e]

    return {c.args[0].name: c.args[1].value for c in conjuncts(system.init)
            if isinstance(c, Op) and c.op == "==" and isinstance(c.args[0], Var) and isinstance(c.args[1], Const)}


def replay_on_model(doc: Mapping[str, Any]) -> ModelReplay:
    """Run a queue-service trace on the model; ``EOPNOTSUPP`` for other systems."""
    meta = doc.get("#meta", {})
    system = system_from_meta(meta)
    if system.name != "queue":
        raise NetlinkError("EOPNOTSUPP", f"only queue-service traces replay on the byte-level model (this one is "
                                      f"{system.name!r}); use --on spec")
    states = [decode_value(s) for s in doc["states"]]
    first = states[0]
    n = int(first["rx_frame_nr"])
    counters = [v.name for v in system.state if v.sort == "int" and v.name != "rx_frame_nr"]
    start = _initial_values(system)  # what init fixes (q_head = 1, the id space, ...); other counters 0
    if n < 1 or any(first.get(c, 0) != start.get(c, 0) for c in counters) or \
            any(first["rx_status"][k] for k in range(n)):
        raise NetlinkError("EINVAL", "the trace does not start from an empty ring (is it a CTI, not a BMC trace?)")
    variant = Variant(queue_alloc_outside_lock=bool(system.variant.get("queue_alloc_outside_lock", True)))
    s = Kernel(ModelConfig(variant=variant)).socket()
    s.setsockopt(NETLINK_RX_RING, RingRequest(4096, n, 4096, n).pack())  # one frame per block
    s.mmap(4096 * n)
    q = QueueService(s)
    out = ModelReplay(meta.get("invariant"), len(states) - 1)
    for i, raw in enumerate(doc["states"][1:], start=1):
        action, picks = raw["mbt::actionTaken"], decode_value(raw.get("mbt::nondetPicks", {}))
        if action == "queue_alloc":
            q.alloc(picks["c"], f"packet from cpu {picks['c']}".encode())
        elif action == "queue_send":
            q.send(picks["c"])
        elif action == "queue_enqueue":
            q.enqueue(picks["c"], f"packet from cpu {picks['c']}".encode())
        elif action == "read_frame":
            q.read_next()
        elif action in ("verdict_batch", "verdict_batch_wrap"):
            q.verdict_batch(picks["m"])
        else:
            raise NetlinkError("EINVAL", f"step {i}: unknown queue action {action!r}")
        want = states[i]["rx_status"]
        if [s.statuses("rx")[k] for k in range(n)] != [want[k] for k in range(n)]:
            out.mismatches.append((i, "rx_status"))
    out.violations = list(q.violations)
    out.unseen_decided = q.unseen_decided
    return out
