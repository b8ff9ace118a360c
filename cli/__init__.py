"""nlmmap: reference model, proof kit and conformance suite for memory-mapped netlink I/O.

The package is four rooms (``nlmmap.spec``, ``nlmmap.model``, ``nlmmap.impl``,
``nlmmap.conformance``) and this thin top level holding the one CLI (:mod:`nlmmap.cli`).
Importing ``nlmmap`` imports nothing heavy.
"""

__version__ = "0.1.0"
