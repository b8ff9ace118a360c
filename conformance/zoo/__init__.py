"""nlmmap.conformance.zoo: the mutant zoo, known-bad kernel sides built from the production
implementation, one bug each (design.md section 4; project issue 9).

Every mutant is a small subclass of :class:`nlmmap.impl.ksock.KSock` that overrides one hook of
the table in :mod:`nlmmap.impl` (or a few lines around one), so no flag is threaded through the
production paths. Its docstring names the rule it breaks and the fact-sheet section
(``shared/reference/kernel-protocol.md``). Run one with::

    python -m nlmmap.impl.adapter --socket-class nlmmap.conformance.zoo.rx:SkipNotSteppedOver
    nlmmap conform --exec "python -m nlmmap.impl.adapter --socket-class nlmmap.conformance.zoo.tx:NmLenReread"

The kill table (``nlmmap conform --mutants``) reads the zoo as data, the ``implementation_flaws``
section of ``nlmmap/spec/expected.json``; per mutant: ``doc`` (the bug in words), ``section`` (of
the fact sheet), ``adapter_args`` (``python -m nlmmap.impl.adapter ARGS`` starts it), ``needs``
(adapter features without which it cannot be observed; ``queue``: no adapter has it yet) and
``caught_by`` (what the kill table's check column may show: a deviation such as
``answer.poll.revents`` or ``memory.RX[*].nm_pid``, ``*`` for any index or field, or a check such
as ``toctou_race``).

Modules, one concept each: ``rx`` (ring and COPY paths, frame headers), ``overrun`` (ENOBUFS and
congestion), ``poll``, ``tx`` (the TX walk and the kick), ``setup`` (setsockopt), ``family``
(ACKs, dumps, batch verdicts). Importing this package is light; :func:`mutant_classes` imports the
modules (and with them :mod:`nlmmap.impl`).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["MODULES", "mutant_classes", "socket_class_spec"]

#: The zoo's modules (``nlmmap.conformance.zoo.<name>``).
MODULES = ("rx", "overrun", "poll", "tx", "setup", "family")


def socket_class_spec(cls: type) -> str:
    """The ``--socket-class`` value of a zoo class: ``nlmmap.conformance.zoo.<module>:<Class>``."""
    return f"{cls.__module__}:{cls.__qualname__}"


def mutant_classes() -> dict[str, Any]:
    """Every zoo class by its ``--socket-class`` value, in module order (imports the modules)."""
    from nlmmap.impl.ksock import KSock

    out: dict[str, Any] = {}
    for name in MODULES:
        mod = importlib.import_module(f"{__name__}.{name}")
        for attr in getattr(mod, "__all__", ()):
            cls = getattr(mod, attr)
            if isinstance(cls, type) and issubclass(cls, KSock) and cls is not KSock:
                out[socket_class_spec(cls)] = cls
    return out
