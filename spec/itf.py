"""Apalache's Informal Trace Format (ITF, ``*.itf.json``): write and read nlmmap traces.

Hand-written JSON rather than the ``itf-py`` package: the subset needed is tiny (integers,
booleans, maps, records), and keeping it here avoids a dependency for a file format the spec room
owns. Encoding (ITF spec, https://apalache-mc.org/docs/adr/015adr-trace.html):

* integers: a JSON number when it is a safe double integer (|v| < 2**53), else
  ``{"#bigint": "<decimal>"}`` (readers accept both);
* booleans: JSON booleans; arrays (total maps from int): ``{"#map": [[k, v], ...]}`` over the
  indices that matter, the value elsewhere in ``#meta.defaults`` (only needed for the first state);
* each state carries ``"#meta": {"index": i}``, the action that produced it in
  ``"mbt::actionTaken"`` (``"init"`` for the first) and its parameters in ``"mbt::nondetPicks"``
  (a record), as Apalache's model-based-testing traces do.

``#meta`` of the trace: ``format``, ``format-description``, ``source`` (the tool), ``system``,
``variant`` (switch names), ``invariant`` (the violated property), ``kind`` (``invariant`` or
``step``), ``user`` (``any`` or ``well-behaved``), ``seed``, ``z3`` (full version), ``defaults``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["ACTION_KEY", "PICKS_KEY", "encode_value", "decode_value", "make_trace", "write_itf", "read_itf"]

ACTION_KEY = "mbt::actionTaken"
PICKS_KEY = "mbt::nondetPicks"
_SAFE = 1 << 53


def encode_value(v: Any) -> Any:
    """A Python value (int, bool, ``{int: value}``) as ITF JSON."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v if -_SAFE < v < _SAFE else {"#bigint": str(v)}
    if isinstance(v, Mapping):
        return {"#map": [[encode_value(k), encode_value(x)] for k, x in sorted(v.items())]}
    if isinstance(v, str):
        return v
    raise TypeError(f"cannot encode {v!r} ({type(v).__name__}) as ITF")


def decode_value(v: Any) -> Any:
    """ITF JSON back to Python (``#map`` -> dict, ``#bigint`` -> int, records -> dict)."""
    if isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, dict):
        if "#bigint" in v:
            return int(v["#bigint"])
        if "#map" in v:
            return {decode_value(k): decode_value(x) for k, x in v["#map"]}
        if "#tup" in v:
            return tuple(decode_value(x) for x in v["#tup"])
        if "#set" in v:
            return frozenset(decode_value(x) for x in v["#set"])
        return {k: decode_value(x) for k, x in v.items() if k != "#meta"}
    if isinstance(v, list):
        return [decode_value(x) for x in v]
    raise ValueError(f"not an ITF value: {v!r}")


def make_trace(meta: Mapping[str, Any], states: list[Mapping[str, Any]], actions: list[str],
               picks: list[Mapping[str, Any]]) -> dict[str, Any]:
    """An ITF document: ``states[i]`` was reached by ``actions[i]`` with ``picks[i]``
    (``actions[0]`` is ``"init"``)."""
    if not (len(states) == len(actions) == len(picks)):
        raise ValueError("states, actions and picks must have the same length")
    names = sorted(states[0]) if states else []
    out_states = []
    for i, (st, a, p) in enumerate(zip(states, actions, picks, strict=True)):
        d: dict[str, Any] = {"#meta": {"index": i}, ACTION_KEY: a,
                             PICKS_KEY: {k: encode_value(x) for k, x in p.items()}}
        for n in names:
            d[n] = encode_value(st[n])
        out_states.append(d)
    return {"#meta": {"format": "ITF", "format-description": "https://apalache-mc.org/docs/adr/015adr-trace.html",
                      **meta},
            "vars": names, "states": out_states}


def write_itf(path: str | Path, doc: Mapping[str, Any]) -> None:
    """Write an ITF document (sorted keys, so files diff well)."""
    Path(path).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


def read_itf(path: str | Path) -> dict[str, Any]:
    """Read an ITF document (``ValueError`` naming the problem if it is not one)."""
    try:
        doc = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("states"), list):
        raise ValueError(f"{path}: not an ITF trace (no 'states' list)")
    return doc
