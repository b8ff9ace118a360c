"""The spec plumbing of one model socket: configuration, taking spec actions, the step record.

One mechanism decides every transition the model makes. A kernel or user *event* (a message for
this socket, a recvmsg, a status word the user writes, the next frame of a TX walk) names its
*candidate* spec actions; each candidate's parameters come from the event or, for the kernel's
own choices, from the action's ``choose`` (``choose_alloc``: the frame ``netlink_forward_ring``
stops at); the spec's guards are evaluated on the socket's state and the one enabled candidate is
taken (:meth:`SocketCore.take`). The spec's alternatives are mutually exclusive, so more than one
enabled candidate, or none where one is required, is a model bug (:class:`ModelInvariantError`).
What the caller sees follows from *which* action was taken: its ``errno`` (recvmsg_error:
ENOBUFS), or for a user call whose one action is not enabled, the action's ``refusal`` errno
(:meth:`SocketCore.call`: munmap of an unmapped socket is EINVAL). A spec action taken while its
guard is false is :class:`~nlmmap.spec.system.ActionDisabled`, never an errno.

Every action taken is recorded as a :class:`Step` (action, actor, parameters, and the frames whose
status word it changed, as :class:`FrameChange`), appended to ``sock.trace`` and handed to the
kernel's observers (``Kernel(config, on_step=...)``, ``Kernel.observe``) with the socket's handle.
Before each step the spec's step properties are checked, after it the invariants (all of them
while the user is well-behaved, the ones marked ``user="any"`` once it wrote something a
well-behaved user would not); the violations the configured history switches are known to cause
are recorded in ``sock.violations`` instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import DEFAULT_PAGE_SIZE, check_page_size
from nlmmap.spec.errors import NetlinkError
from nlmmap.spec.expr import Expr, evaluate, render
from nlmmap.spec.protocol import Variant, expected_violations
from nlmmap.spec.system import (
    Action,
    ActionDisabled,
    Store,
    StoreRange,
    System,
    apply_action,
    enabled,
    violated_invariants,
    violated_step_properties,
)

from .memory import STATUS_ARRAYS, Ring, SpecState, SpecView

if TYPE_CHECKING:
    from .socket import Kernel

__all__ = ["ModelConfig", "ModelInvariantError", "ActionDisabled", "Delivery", "Step", "FrameChange",
           "select_action", "SocketCore"]


class ModelInvariantError(AssertionError):
    """The model broke the spec: an invariant or step property, or an event with more or fewer
    than one enabled candidate action. A bug in the model, never the user's."""


@dataclass(frozen=True)
class ModelConfig:
    """Parameters of the modelled kernel and machine; set them to match the target a suite
    compares with (:meth:`for_target` reads a target's ``hello``)."""

    page_size: int = DEFAULT_PAGE_SIZE
    variant: Variant = field(default_factory=Variant)
    cap_net_admin: bool = True  # CAP_NET_ADMIN in the initial user namespace (else EPERM on rings)
    memory_limit: int = 64 << 20  # bytes per ring the "machine" can allocate (else ENOMEM)
    peer_pid: int = 4242  # credentials pid of the user-space peer (nm_pid of its messages)
    tgid: int = 1  # the user process: its sockets autobind to it first (family.autobind_portid; the 4.5 agent is pid 1)
    sndbuf: int = nl.DEFAULT_SNDBUF  # SO_SNDBUF: plain sends longer than sndbuf - 32 fail with EMSGSIZE
    dump_service: bool = True  # the family answers dump requests of type family.DUMP_TYPE (a real kernel: no)
    check_invariants: str = "auto"  # "always", "never", or "auto" (rings of at most 64 frames)
    netlink_mmap: bool = True  # False: a kernel without the feature (4.6+, CONFIG off): section 1.7

    def __post_init__(self) -> None:
        check_page_size(self.page_size)
        if self.check_invariants not in ("always", "never", "auto"):
            raise NetlinkError("EINVAL", f"check_invariants must be always/never/auto, got {self.check_invariants!r}")

    @classmethod
    def for_target(cls, hello: Mapping[str, Any], **overrides: Any) -> ModelConfig:
        """A configuration matching a target's ``hello`` answer: its ``page_size``, and the dump
        service only if it advertises the ``dump`` feature; ``overrides`` set any other field."""
        kw: dict[str, Any] = {"page_size": int(hello.get("page_size", DEFAULT_PAGE_SIZE)),
                              "dump_service": "dump" in hello.get("features", ())}
        kw.update(overrides)
        return cls(**kw)


@dataclass
class Msg:
    """A message in a socket's receive queue, with the credentials its COPY frame shows and that
    frame (None: queued without an RX ring)."""

    data: bytes
    pid: int = 0
    group: int = 0
    frame: int | None = None


@dataclass
class Delivery:
    """How one message to a socket ended: ``frame`` (built in an RX frame), ``copy`` (COPY frame
    or plain receive queue), ``dropped``."""

    outcome: str
    frame: int | None = None


@dataclass(frozen=True)
class FrameChange:
    """A frame whose status word a step changed: ring ``"rx"``/``"tx"``, index, before, after."""

    ring: str
    index: int
    status_before: int
    status_after: int


@dataclass(frozen=True)
class Step:
    """One spec action the model took: its name, actor (kernel, user, adversary), parameters
    and the frames whose status word it changed."""

    action: str
    actor: str
    params: Mapping[str, Any]
    frames: tuple[FrameChange, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (bytes parameters as hex)."""
        return {"action": self.action, "actor": self.actor,
                "params": {k: v.hex() if isinstance(v, (bytes, bytearray)) else v for k, v in self.params.items()},
                "frames": [[f.ring, f.index, f.status_before, f.status_after] for f in self.frames]}


def select_action(system: System, state: Any, candidates: Iterable[str], event: Mapping[str, Any], *,
                  optional: bool = False, accept: Callable[[Action, dict[str, Any]], bool] | None = None,
                  what: str = "event") -> tuple[Action, dict[str, Any]] | None:
    """The one enabled action among ``candidates`` (names; those not in ``system``, i.e. not in
    this variant, are left out), with its parameters: each parameter from ``event`` or else from
    the action's ``choose`` (a choice of None leaves the candidate out). ``accept`` filters the
    enabled ones further. None when none is enabled and ``optional``; any other count than one
    is a :class:`ModelInvariantError`."""
    candidates = tuple(candidates)
    names = {a.name for a in system.actions}
    options: list[tuple[Action, dict[str, Any]]] = []
    for name in candidates:
        if name not in names:
            continue
        a = system.action(name)
        params = {p.name: event[p.name] for p in a.params if p.name in event}
        if len(params) < len(a.params):
            if a.choose is None:
                missing = sorted(p.name for p in a.params if p.name not in params)
                raise ModelInvariantError(f"{what}: candidate {name} needs {missing}, which the event does not give")
            picked = a.choose(state)
            if picked is None:
                continue
            params.update({k: v for k, v in picked.items() if k not in params})
        if enabled(a, state, params) and (accept is None or accept(a, params)):
            options.append((a, params))
    if len(options) == 1:
        return options[0]
    if not options and optional:
        return None
    raise ModelInvariantError(f"{what}: {len(options)} of the candidate actions {list(candidates)} are enabled "
                              f"({[a.name for a, _ in options]}); the spec's alternatives must be exactly one")


def stored_value(action: Action, array: str, index: int, state: Any, params: Mapping[str, Any]) -> Any:
    """The value ``action`` with ``params`` writes to ``array[index]`` (evaluated in ``state``),
    or None if it does not write that element."""
    look = _lookup(state, params)
    out = None
    for u in action.updates:
        if isinstance(u, Store) and u.array == array and evaluate(u.index, look) == index:
            out = evaluate(u.value, look)
        elif isinstance(u, StoreRange) and u.array == array and evaluate(u.lo, look) <= index < evaluate(u.hi, look):
            out = evaluate(u.body, look, {u.var: index})
    return out


def _lookup(state: Any, params: Mapping[str, Any]) -> Callable[[str], Any]:
    return lambda name: params[name] if name in params else state[name]


class SocketCore:
    """What every part of a model socket shares: its rings, receive queue, spec view and the
    one way spec actions are taken."""

    def __init__(self, kernel: Kernel, handle: int, portid: int):
        self.kernel = kernel
        self.handle = handle
        self.portid = portid
        self.rx: Ring | None = None
        self.tx: Ring | None = None
        self.rq: list[Msg] = []
        self.adversarial = False  # the user wrote something a well-behaved user would not
        self.closed = False
        self.trace: list[Step] = []  # spec actions taken, in order
        self.violations: list[tuple[str, str, int]] = []  # (property, action, step) of known flaws
        self.view = SpecView(kernel.system, lambda r: self.rx if r == "rx" else self.tx)
        self._spec_state = SpecState(self.view, kernel.system)

    # ---- the spec state -------------------------------------------------------------------------
    @property
    def system(self) -> System:
        """The transition system this socket follows (the configured variant)."""
        return self.kernel.system

    @property
    def config(self) -> ModelConfig:
        """The modelled kernel's configuration."""
        return self.kernel.config

    @property
    def spec_state(self) -> SpecState:
        """Read-only, name-checked view of the socket's spec state (``spec_state["rx_head"]``)."""
        return self._spec_state

    @property
    def g(self) -> SpecState:
        """Former name of :attr:`spec_state` (read-only now)."""
        return self._spec_state

    def holds(self, predicate: Expr) -> bool:
        """Evaluate a spec predicate (e.g. ``poll_in()``) on this socket."""
        return bool(evaluate(predicate, self.view.__getitem__))

    def value(self, e: Expr) -> Any:
        """Evaluate a spec expression on this socket."""
        return evaluate(e, self.view.__getitem__)

    def _alive(self) -> None:
        if self.closed:
            raise NetlinkError("EBADF", f"socket {self.handle} is closed")

    # ---- taking actions -------------------------------------------------------------------------
    def select(self, candidates: Iterable[str], *, optional: bool = False,
               accept: Callable[[Action, dict[str, Any]], bool] | None = None, what: str = "event",
               **event: Any) -> tuple[Action, dict[str, Any]] | None:
        """The one enabled candidate for an event on this socket (:func:`select_action`)."""
        return select_action(self.system, self.view, candidates, event, optional=optional, accept=accept, what=what)

    def take(self, candidates: Iterable[str], *, optional: bool = False, what: str = "event",
             accept: Callable[[Action, dict[str, Any]], bool] | None = None, **event: Any) -> Action | None:
        """Select the one enabled candidate (``accept`` filters them further) and take it; returns
        the action taken (None only when ``optional`` and none is enabled)."""
        sel = self.select(candidates, optional=optional, accept=accept, what=what, **event)
        if sel is None:
            return None
        self.step(sel[0].name, **sel[1])
        return sel[0]

    def call(self, action: str, **params: Any) -> Action:
        """A user call that is one spec action: taken if enabled, else the user gets the action's
        refusal errno (:meth:`admit`)."""
        a = self.admit(action, **params)
        self.step(action, **params)
        return a

    def admit(self, action: str, **params: Any) -> Action:
        """Check that a user call's one spec action is enabled, before the model changes anything:
        if not, the user gets the action's refusal errno (a disabled action without one is a
        caller bug: ActionDisabled)."""
        a = self.system.action(action)
        if not enabled(a, self.view, params):
            if a.refusal is None:
                raise ActionDisabled(action, render(a.guard))
            raise NetlinkError(a.refusal, f"{action}: {a.doc} (refused: {render(a.guard)} is false)")
        return a

    def enabled(self, action: str, **params: Any) -> bool:
        """Whether a spec action is enabled on this socket with these parameters."""
        return enabled(self.system.action(action), self.view, params)

    def step(self, action: str, **params: Any) -> Step:
        """Take one spec action on this socket: check its guard (ActionDisabled) and step
        properties, apply it, record and report the step, check the invariants."""
        a = self.system.action(action)
        if not enabled(a, self.view, params):
            raise ActionDisabled(action, render(a.guard))
        user = "well-behaved" if not self.adversarial else "any"
        bad = self._unexpected(violated_step_properties(self.system, a, self.view, params, user=user), action)
        if bad:
            raise ModelInvariantError(f"{a.actor} action {action}({params}) would break {', '.join(bad)}")
        words = self._status_words(a, params)
        before = [self.view.status(r, i) for r, i in words]
        apply_action(a, self.view, params)
        frames = tuple(FrameChange(r, i, b, now) for (r, i), b in zip(words, before, strict=True)
                       if (now := self.view.status(r, i)) != b)
        rec = Step(a.name, a.actor, dict(params), frames)
        self.trace.append(rec)
        self.kernel.notify(self.handle, rec)
        self._check_after(rec)
        return rec

    def _status_words(self, a: Action, params: Mapping[str, Any]) -> list[tuple[str, int]]:
        """The (ring, frame) status words ``a`` may write, read off its updates in the pre-state."""
        look = _lookup(self.view, params)
        out: list[tuple[str, int]] = []
        for u in a.updates:
            if isinstance(u, Store) and u.array in STATUS_ARRAYS:
                out.append((STATUS_ARRAYS[u.array], evaluate(u.index, look)))
            elif isinstance(u, StoreRange) and u.array in STATUS_ARRAYS:
                ring = self.rx if STATUS_ARRAYS[u.array] == "rx" else self.tx
                hi = min(evaluate(u.hi, look), ring.geom.frame_nr if ring else 0)
                out += [(STATUS_ARRAYS[u.array], k) for k in range(evaluate(u.lo, look), hi)]
        return list(dict.fromkeys(out))

    def _check_after(self, rec: Step) -> None:
        v = self.view.values
        if len(self.rq) != v["rq_len"]:
            raise ModelInvariantError(f"receive queue holds {len(self.rq)} messages, spec says {v['rq_len']}")
        if self.rx is not None:
            nr, head, queued = self.rx.geom.frame_nr, v["rx_head"], v["rx_queued"]
            for m in self.rq:  # a COPY frame handed back before recvmsg: its message has no frame now
                if m.frame is not None and not queued[m.frame]:
                    m.frame = None
            tied = [m.frame for m in self.rq if m.frame is not None]
            spec_order = [f for f in ((head + d) % nr for d in range(nr)) if queued[f]]
            if not self.adversarial and (tied != spec_order or len(self.rq) - len(tied) != v["rq_orphans"]):
                raise ModelInvariantError(f"receive queue's COPY frames {[m.frame for m in self.rq]}, the spec's "
                                          f"queued frames in ring order {spec_order} and {v['rq_orphans']} without")
        for ring, key in ((self.rx, "rx_frame_nr"), (self.tx, "tx_frame_nr")):
            if (ring.geom.frame_nr if ring else 0) != v[key]:
                raise ModelInvariantError(f"spec says {key} = {v[key]}, the model's ring disagrees")
        if self._check():
            user = "well-behaved" if not self.adversarial else "any"
            bad = self._unexpected(violated_invariants(self.system, self.view, user=user), rec.action)
            if bad:
                raise ModelInvariantError(f"after {rec.action}({rec.params}): invariants {', '.join(bad)} broken")

    def _unexpected(self, names: list[str], action: str) -> list[str]:
        """Record violations the configured history switches are known to cause (the historical
        flaws, see ``violations``); return the others (model bugs)."""
        known = expected_violations(self.config.variant)
        for nm in names:
            if nm in known:
                self.violations.append((nm, action, len(self.trace)))
        return [nm for nm in names if nm not in known]

    def _check(self) -> bool:
        mode = self.config.check_invariants
        if mode == "auto":
            n = (self.rx.geom.frame_nr if self.rx else 0) + (self.tx.geom.frame_nr if self.tx else 0)
            return n <= 64
        return mode == "always"
