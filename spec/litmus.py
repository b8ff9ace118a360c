"""Litmus programs: a small source language (C11 atomics, Linux kernel primitives, plain accesses),
its compilation to x86-64 and AArch64 instructions, and the classic calibration tests.

A source program (:class:`SourceProgram`) is threads of :class:`Op` (``load``, ``store``, ``fence``,
``branch``) in one of four APIs:

* ``plain``: ordinary C accesses (``memcpy``, ``struct.pack_into`` on a mapping): ``MOV`` / ``LDR``, ``STR``;
* ``c11``: ``<stdatomic.h>`` operations with a ``memory_order`` (what ``atomicshm`` calls, built
  with the GNU ``__atomic`` builtins), and ``atomic_thread_fence`` (``atomicshm.fence``);
* ``linux``: the kernel's ``READ_ONCE``/``WRITE_ONCE``, ``smp_load_acquire``/``smp_store_release``,
  ``smp_mb``/``smp_rmb``/``smp_wmb``;
* ``tso``: the pure-Python atomics backend of ``nlmmap.impl.atomics`` (x86-64 only): plain
  accesses, plus a CPython lock round trip (a ``lock``-prefixed instruction) as its fence.

:data:`MAPPINGS` is the compilation, as data, with its sources: for C11 the standard mappings
(Batty, Memarian, Owens, Sarkar, Sewell, "Clarifying and compiling C/C++ concurrency: from C++11
to POWER", POPL 2012; the table at https://www.cl.cam.ac.uk/~pes20/cpp/cpp0xmappings.html), with
GCC's ``XCHG`` for a seq_cst store on x86-64 (seen in the ``atomicshm`` wheel) and, for the
``aarch64-rcpc`` target, ``LDAPR`` for an acquire load (what C11 permits and GCC/Clang emit with
``-march=armv8.3-a`` or later); for the kernel, Linux 4.4's ``arch/x86/include/asm/barrier.h`` (``smp_mb``
= ``mfence``, ``smp_rmb``/``smp_wmb`` = compiler barriers only) and ``arch/arm64/include/asm/barrier.h``
(``dmb ish``/``dmb ishld``/``dmb ishst``, ``ldar``/``stlr``). A ``branch`` on a register makes every later
event of its thread control-dependent on that read.

The calibration tests (:data:`CALIBRATION`) are herd's classic shapes (MP, SB, LB, 2+2W, IRIW, the
coherence tests) and their fenced or acquire/release versions, written directly in instructions;
their known results under each model are data in ``ordering_expected.json`` (section ``calibration``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .memory_model import Event, F, Program, R, W

__all__ = ["Op", "SourceProgram", "TARGETS", "MAPPINGS", "compile_program", "CALIBRATION", "calibration",
           "load", "store", "fence", "branch", "UnsupportedOp"]

#: Targets and the memory model each runs under.
TARGETS: dict[str, str] = {"x86-64": "x86-TSO", "aarch64": "ARMv8", "aarch64-rcpc": "ARMv8"}


@dataclass(frozen=True)
class Op:
    """One source operation; ``note`` says where it is in the code (shown in counterexamples)."""

    kind: str  # "load", "store", "fence", "branch"
    api: str  # "plain", "c11", "linux", "tso"
    order: str
    loc: str | None = None
    value: int | None = None
    reg: str | None = None
    note: str = ""

    def text(self, values: Mapping[str, Mapping[int, str]] | None = None) -> str:
        """C-like text, e.g. ``store(nm_status, VALID, release)`` or ``smp_mb()``."""
        names = (values or {}).get(self.loc or "", {})
        vname = names.get(self.value, str(self.value)) if self.value is not None else ""
        if self.kind == "branch":
            return f"if ({self.reg} ...)"
        if self.kind == "fence":
            if self.api == "c11":
                return f"atomic_thread_fence({self.order})"
            return f"{self.order}()" if self.api == "linux" else "lock round trip (fence)"
        if self.api == "linux":
            if self.kind == "load":
                return f"{self.reg} = {self.order}({self.loc})"
            return f"{self.order}({self.loc}, {vname})"
        if self.api == "plain":
            return f"{self.reg} = {self.loc}" if self.kind == "load" else f"{self.loc} = {vname}"
        tag = "" if self.api == "c11" else "tso:"
        if self.kind == "load":
            return f"{self.reg} = {tag}load({self.loc}, {self.order})"
        return f"{tag}store({self.loc}, {vname}, {self.order})"


def load(loc: str, reg: str, order: str = "plain", api: str | None = None, note: str = "") -> Op:
    """A load; ``api`` defaults to ``plain`` for order ``plain``, else ``c11``."""
    return Op("load", api or ("plain" if order == "plain" else "c11"), order, loc, None, reg, note)


def store(loc: str, value: int, order: str = "plain", api: str | None = None, note: str = "") -> Op:
    """A store; ``api`` defaults to ``plain`` for order ``plain``, else ``c11``."""
    return Op("store", api or ("plain" if order == "plain" else "c11"), order, loc, value, None, note)


def fence(order: str, api: str = "linux", note: str = "") -> Op:
    """A fence: ``smp_mb``, ``smp_rmb``, ``smp_wmb`` (linux), ``acquire``/``release``/``seq_cst``
    (c11: ``atomic_thread_fence``) or ``lock`` (the tso backend)."""
    return Op("fence", api, order, note=note)


def branch(reg: str, note: str = "") -> Op:
    """A conditional branch on ``reg``: the rest of the thread is control-dependent on its read."""
    return Op("branch", "plain", "branch", reg=reg, note=note)


@dataclass(frozen=True)
class SourceProgram:
    """A litmus program in source operations; :func:`compile_program` makes the instruction-level
    :class:`~nlmmap.spec.memory_model.Program` for one target."""

    name: str
    threads: tuple[tuple[Op, ...], ...]
    exists: tuple[tuple[tuple[str, int], ...], ...]
    init: tuple[tuple[str, int], ...] = ()
    thread_names: tuple[str, ...] = ()
    values: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    doc: str = ""


class UnsupportedOp(ValueError):
    """An operation has no compilation for the target (e.g. the ``tso`` backend on AArch64)."""


_AARCH64: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("plain", "load", "plain"): ("LDR",), ("plain", "store", "plain"): ("STR",),
    ("c11", "load", "acquire"): ("LDAR",), ("c11", "load", "seq_cst"): ("LDAR",),
    ("c11", "store", "release"): ("STLR",), ("c11", "store", "seq_cst"): ("STLR",),
    ("linux", "load", "READ_ONCE"): ("LDR",), ("linux", "load", "smp_load_acquire"): ("LDAR",),
    ("linux", "store", "WRITE_ONCE"): ("STR",), ("linux", "store", "smp_store_release"): ("STLR",),
    ("linux", "fence", "smp_mb"): ("DMB ISH",), ("linux", "fence", "smp_rmb"): ("DMB ISHLD",),
    ("linux", "fence", "smp_wmb"): ("DMB ISHST",),
    ("c11", "fence", "acquire"): ("DMB ISHLD",), ("c11", "fence", "release"): ("DMB ISH",),
    ("c11", "fence", "seq_cst"): ("DMB ISH",),
}

#: target -> (api, kind, order) -> instructions (an empty tuple: a compiler barrier only).
MAPPINGS: dict[str, dict[tuple[str, str, str], tuple[str, ...]]] = {
    "x86-64": {
        ("plain", "load", "plain"): ("MOV",), ("plain", "store", "plain"): ("MOV",),
        ("c11", "load", "acquire"): ("MOV",), ("c11", "load", "seq_cst"): ("MOV",),
        ("c11", "store", "release"): ("MOV",), ("c11", "store", "seq_cst"): ("XCHG",),
        ("linux", "load", "READ_ONCE"): ("MOV",), ("linux", "load", "smp_load_acquire"): ("MOV",),
        ("linux", "store", "WRITE_ONCE"): ("MOV",), ("linux", "store", "smp_store_release"): ("MOV",),
        ("linux", "fence", "smp_mb"): ("MFENCE",), ("linux", "fence", "smp_rmb"): (),
        ("linux", "fence", "smp_wmb"): (),
        ("c11", "fence", "acquire"): (), ("c11", "fence", "release"): (), ("c11", "fence", "seq_cst"): ("MFENCE",),
        ("tso", "load", "acquire"): ("MOV",), ("tso", "load", "seq_cst"): ("LOCK", "MOV"),
        ("tso", "store", "release"): ("MOV",), ("tso", "store", "seq_cst"): ("MOV", "LOCK"),
        ("tso", "fence", "lock"): ("LOCK",),
    },
    "aarch64": _AARCH64,
    "aarch64-rcpc": {**_AARCH64, ("c11", "load", "acquire"): ("LDAPR",)},
}

# instruction -> (event kind or "" for the op's own kind, annotations or fence kind)
_INSTR: dict[str, tuple[str, tuple[str, ...]]] = {
    "MOV": ("", ()), "XCHG": ("W", ("X",)), "MFENCE": ("F", ("mfence",)),
    "LOCK": ("F", ("mfence",)),  # lock cmpxchg in the pthread mutex: a locked instruction, a full fence
    "LDR": ("R", ()), "LDAR": ("R", ("A",)), "LDAPR": ("R", ("Q",)), "STR": ("W", ()), "STLR": ("W", ("L",)),
    "DMB ISH": ("F", ("dmb.full",)), "DMB ISHLD": ("F", ("dmb.ld",)), "DMB ISHST": ("F", ("dmb.st",)),
}
_INSTR_TEXT = {"LOCK": "lock cmpxchg"}


def compile_program(src: SourceProgram, target: str) -> Program:
    """``src`` as instructions of ``target`` (a key of :data:`TARGETS`); raises
    :class:`UnsupportedOp` naming the operation when the target cannot run it."""
    if target not in MAPPINGS:
        raise ValueError(f"unknown target {target!r} (one of {', '.join(MAPPINGS)})")
    table = MAPPINGS[target]
    threads: list[tuple[Event, ...]] = []
    ctrl: list[tuple[str, int]] = []
    for ops in src.threads:
        evs: list[Event] = []
        for op in ops:
            if op.kind == "branch":
                ctrl.append((op.reg or "", len(evs)))
                continue
            key = (op.api, op.kind, op.order)
            if key not in table:
                raise UnsupportedOp(f"{src.name}: {op.text(src.values)} ({op.api} {op.kind} {op.order}) has no "
                                    f"compilation for {target}")
            text = op.text(src.values)
            for ins in table[key]:
                kind, ann = _INSTR[ins]
                kind = kind or ("R" if op.kind == "load" else "W")
                itext = _INSTR_TEXT.get(ins, ins)
                if kind == "F":
                    evs.append(F(ann[0], instr=itext, src=text))
                elif kind == "R":
                    evs.append(R(op.loc or "", op.reg or "", *ann, instr=itext, src=text))
                else:
                    evs.append(W(op.loc or "", op.value if op.value is not None else 0, *ann, instr=itext, src=text))
        threads.append(tuple(evs))
    return Program(name=src.name, threads=tuple(threads), exists=src.exists, init=src.init, ctrl=tuple(ctrl),
                   thread_names=src.thread_names, values=src.values, doc=src.doc)


# --- calibration: the classic litmus tests, in instructions ---------------------------------------
def _p(name: str, threads: list[list[Event]], exists: list[list[tuple[str, int]]], *,
       ctrl: tuple[tuple[str, int], ...] = (), doc: str = "") -> Program:
    return Program(name, tuple(tuple(t) for t in threads), tuple(tuple(c) for c in exists), ctrl=ctrl, doc=doc)


def _mp(name: str, w: tuple[Event, ...], r: tuple[Event, ...], ctrl: tuple[tuple[str, int], ...] = ()) -> Program:
    return _p(name, [[*w], [*r]], [[("r0", 1), ("r1", 0)]], ctrl=ctrl,
              doc="message passing: sees the flag, misses the data")


def _build() -> dict[str, Program]:
    x1, y1 = W("x", 1), W("y", 1)
    ry, rx = R("y", "r0"), R("x", "r1")
    out = [
        _mp("MP", (x1, y1), (ry, rx)),
        _p("SB", [[x1, R("y", "r0")], [y1, R("x", "r1")]], [[("r0", 0), ("r1", 0)]], doc="store buffering"),
        _p("LB", [[R("x", "r0"), y1], [R("y", "r1"), x1]], [[("r0", 1), ("r1", 1)]], doc="load buffering"),
        _p("2+2W", [[x1, W("y", 2)], [y1, W("x", 2)]], [[("[x]", 1), ("[y]", 1)]]),
        _p("IRIW", [[x1], [y1], [R("x", "r0"), R("y", "r1")], [R("y", "r2"), R("x", "r3")]],
           [[("r0", 1), ("r1", 0), ("r2", 1), ("r3", 0)]], doc="independent reads of independent writes"),
        _p("CoRR", [[x1], [R("x", "r0"), R("x", "r1")]], [[("r0", 1), ("r1", 0)]]),
        _p("CoWR", [[x1, R("x", "r0")]], [[("r0", 0)]]),
        _p("CoRW1", [[R("x", "r0"), x1]], [[("r0", 1)]]),
        _p("CoRW2", [[R("x", "r0"), x1], [W("x", 2)]], [[("r0", 2), ("[x]", 2)]]),
        _p("CoWW", [[x1, W("x", 2)]], [[("[x]", 1)]]),
        # x86
        _p("SB+mfences", [[x1, F("mfence"), R("y", "r0")], [y1, F("mfence"), R("x", "r1")]],
           [[("r0", 0), ("r1", 0)]]),
        _p("SB+mfence+po", [[x1, F("mfence"), R("y", "r0")], [y1, R("x", "r1")]], [[("r0", 0), ("r1", 0)]]),
        _p("SB+xchgs", [[W("x", 1, "X"), R("y", "r0")], [W("y", 1, "X"), R("x", "r1")]], [[("r0", 0), ("r1", 0)]]),
        # AArch64
        _mp("MP+dmbs", (x1, F("dmb.full"), y1), (ry, F("dmb.full"), rx)),
        _mp("MP+dmb.st+dmb.ld", (x1, F("dmb.st"), y1), (ry, F("dmb.ld"), rx)),
        _mp("MP+dmb.st+po", (x1, F("dmb.st"), y1), (ry, rx)),
        _mp("MP+po+dmb.ld", (x1, y1), (ry, F("dmb.ld"), rx)),
        _mp("MP+dmb.st+ctrl", (x1, F("dmb.st"), y1), (ry, rx), ctrl=(("r0", 1),)),
        _mp("MP+dmb.st+acq", (x1, F("dmb.st"), y1), (R("y", "r0", "A"), rx)),
        _mp("MP+rel+acq", (x1, W("y", 1, "L")), (R("y", "r0", "A"), rx)),
        _mp("MP+rel+acqpc", (x1, W("y", 1, "L")), (R("y", "r0", "Q"), rx)),
        _mp("MP+rel+po", (x1, W("y", 1, "L")), (ry, rx)),
        _mp("MP+po+acq", (x1, y1), (R("y", "r0", "A"), rx)),
        _p("MP+rel-coi+acq", [[x1, W("y", 1, "L"), W("y", 2)], [R("y", "r0", "A"), R("x", "r1")]],
           [[("r0", 2), ("r1", 0)]], doc="a plain write coherence-after a release is ordered after the release's "
                                         "predecessors (po; [L]; coi)"),
        _p("SB+dmbs", [[x1, F("dmb.full"), R("y", "r0")], [y1, F("dmb.full"), R("x", "r1")]],
           [[("r0", 0), ("r1", 0)]]),
        _p("SB+dmb.sts", [[x1, F("dmb.st"), R("y", "r0")], [y1, F("dmb.st"), R("x", "r1")]],
           [[("r0", 0), ("r1", 0)]]),
        _p("SB+rel+acq", [[W("x", 1, "L"), R("y", "r0", "A")], [W("y", 1, "L"), R("x", "r1", "A")]],
           [[("r0", 0), ("r1", 0)]], doc="STLR then LDAR is ordered (RCsc)"),
        _p("SB+rel+acqpc", [[W("x", 1, "L"), R("y", "r0", "Q")], [W("y", 1, "L"), R("x", "r1", "Q")]],
           [[("r0", 0), ("r1", 0)]], doc="STLR then LDAPR is not (RCpc)"),
        _p("LB+ctrls", [[R("x", "r0"), y1], [R("y", "r1"), x1]], [[("r0", 1), ("r1", 1)]],
           ctrl=(("r0", 1), ("r1", 1))),
        _p("LB+ctrl+po", [[R("x", "r0"), y1], [R("y", "r1"), x1]], [[("r0", 1), ("r1", 1)]], ctrl=(("r0", 1),)),
        _p("LB+dmbs", [[R("x", "r0"), F("dmb.full"), y1], [R("y", "r1"), F("dmb.full"), x1]],
           [[("r0", 1), ("r1", 1)]]),
        _p("LB+dmb.lds", [[R("x", "r0"), F("dmb.ld"), y1], [R("y", "r1"), F("dmb.ld"), x1]],
           [[("r0", 1), ("r1", 1)]]),
        _p("LB+acqs", [[R("x", "r0", "A"), y1], [R("y", "r1", "A"), x1]], [[("r0", 1), ("r1", 1)]]),
        _p("LB+rels", [[R("x", "r0"), W("y", 1, "L")], [R("y", "r1"), W("x", 1, "L")]], [[("r0", 1), ("r1", 1)]]),
        _p("2+2W+dmb.sts", [[x1, F("dmb.st"), W("y", 2)], [y1, F("dmb.st"), W("x", 2)]],
           [[("[x]", 1), ("[y]", 1)]]),
        _p("IRIW+dmb.lds", [[x1], [y1], [R("x", "r0"), F("dmb.ld"), R("y", "r1")],
                            [R("y", "r2"), F("dmb.ld"), R("x", "r3")]],
           [[("r0", 1), ("r1", 0), ("r2", 1), ("r3", 0)]], doc="other-multicopy atomicity"),
        _p("IRIW+acqs", [[x1], [y1], [R("x", "r0", "A"), R("y", "r1")], [R("y", "r2", "A"), R("x", "r3")]],
           [[("r0", 1), ("r1", 0), ("r2", 1), ("r3", 0)]]),
    ]
    return {p.name: p for p in out}


#: name -> the calibration litmus test (instructions; annotations as in :mod:`nlmmap.spec.memory_model`).
CALIBRATION: dict[str, Program] = _build()


def calibration(name: str) -> Program:
    """The calibration test ``name`` (KeyError lists the known names)."""
    try:
        return CALIBRATION[name]
    except KeyError:
        raise KeyError(f"no calibration litmus test {name!r}; known: {', '.join(CALIBRATION)}") from None
