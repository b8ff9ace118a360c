"""The generated parts of ``docs/ordering.md``: the results matrix and the counterexample graphs.

``python -m nlmmap.spec.ordering_doc docs/ordering.md`` rewrites every block between
``<!-- BEGIN ordering:KEY -->`` and ``<!-- END ordering:KEY -->`` from a fresh run (``--check``: exit 1
if a block is stale, change nothing); ``--dot DIR`` also writes each counterexample as DOT (for
``dot -Tpng``). Keys: ``matrix``, ``graph:<configuration>@<target>``, ``atomics`` (the implementation's
atomics and their compilation), ``cites`` (the code each implementation side stands for). Times are
never written (they change from run to run); only verdicts and graphs, which are deterministic for
a fixed z3 and seed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .execgraph import execution_dot, format_execution
from .litmus import _INSTR_TEXT, MAPPINGS, TARGETS
from .ordering import CONFIGURATIONS, OrderingReport, prove_ordering
from .ordering_cites import ATOMICS_MAPPING, CITES, Cite, cite_file, cite_qualname

__all__ = ["doc_blocks", "update_doc", "main"]

_BLOCK = re.compile(r"(<!-- BEGIN ordering:(?P<key>[^ ]+) -->\n)(?P<body>.*?)(<!-- END ordering:(?P=key) -->)", re.S)


def _matrix(rep: OrderingReport) -> str:
    cols = list(TARGETS)
    got = {(r.name, r.target): r.outcome for r in rep.results if r.kind == "handoff"}
    lines = ["| configuration | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for c in CONFIGURATIONS:
        cells = []
        for t in cols:
            o = got.get((c.id, t), "-")
            cells.append("**counterexample**" if o == "counterexample" else o)
        lines.append(f"| `{c.id}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _atomics() -> str:
    cols = list(TARGETS)
    lines = ["| backend | operation | source operation in the proofs | " + " | ".join(cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    for backend, op, key, _ in ATOMICS_MAPPING:
        api, kind, order = key
        cells = []
        for t in cols:
            ins = MAPPINGS[t].get(key)
            cells.append("`" + "; ".join(_INSTR_TEXT.get(i, i) for i in ins) + "`" if ins else "-")
        ops = ", ".join(f"`{o.strip()}`" for o in op.split("/"))
        lines.append(f"| {backend} | {ops} | {api} {order} {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _code_cell(cites: tuple[Cite, ...]) -> str:
    by_fn: dict[str, list[str]] = {}
    for fn, code in cites:
        by_fn.setdefault(fn, []).append(code)
    return "<br>".join(f"`{cite_file(fn)}` `{cite_qualname(fn)}`: " + "; ".join(f"`{c}`" for c in codes)
                       for fn, codes in by_fn.items()).replace("|", "\\|")


def _cites() -> str:
    lines = ["| side | code (file, function: the cited code, in order) | configurations |", "|---|---|---|"]
    for (role, name), cites in CITES.items():
        ids = [c.id for c in CONFIGURATIONS if any(s.name == name and s.cites == cites for s in c.sides)]
        lines.append(f"| `{role}` `{name}` | {_code_cell(cites)} | " + ", ".join(f"`{i}`" for i in ids) + " |")
    return "\n".join(lines) + "\n"


def doc_blocks(rep: OrderingReport | None = None) -> dict[str, str]:
    """Every generated block's body, by key."""
    rep = rep or prove_ordering(with_calibration=False)
    out = {"matrix": _matrix(rep), "atomics": _atomics(), "cites": _cites()}
    for r in rep.counterexamples():
        out[f"graph:{r.name}@{r.target}"] = "```text\n" + format_execution(r.execution) + "\n```\n"
    return out


def update_doc(text: str, blocks: dict[str, str]) -> str:
    """``text`` with each ``ordering:KEY`` block replaced (KeyError for a key with no block)."""
    def sub(m: re.Match[str]) -> str:
        key = m.group("key")
        if key not in blocks:
            raise KeyError(f"docs block ordering:{key}: no such result (known: {', '.join(sorted(blocks))})")
        return m.group(1) + blocks[key] + m.group(4)
    return _BLOCK.sub(sub, text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nlmmap.spec.ordering_doc", description=__doc__.split("\n")[0])
    ap.add_argument("doc", type=Path)
    ap.add_argument("--check", action="store_true", help="exit 1 if a generated block is stale")
    ap.add_argument("--dot", type=Path, metavar="DIR", help="also write every counterexample as DOT here")
    args = ap.parse_args(argv)
    rep = prove_ordering(with_calibration=False)
    blocks = doc_blocks(rep)
    old = args.doc.read_text()
    new = update_doc(old, blocks)
    if args.dot:
        args.dot.mkdir(parents=True, exist_ok=True)
        for r in rep.counterexamples():
            name = f"{r.name.replace('/', '__')}@{r.target}.dot"
            (args.dot / name).write_text(execution_dot(r.execution))
    if args.check:
        if new != old:
            sys.stderr.write(f"{args.doc}: generated ordering blocks are stale; run without --check\n")
            return 1
        return 0
    if new != old:
        args.doc.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
