"""CLI subcommands for proofs (``prove``, ``bmc``, ``replay``): registered by :func:`add_parsers`.

Empty until the proof kit lands; nothing is registered, so ``nlmmap --help`` lists only what works.
"""

from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction, epilog: str, parser_class: type) -> None:
    """Register the proof subcommands on ``sub`` (none yet)."""
    return None
