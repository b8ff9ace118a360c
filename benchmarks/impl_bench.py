"""The implementation's figures: a thin wrapper around ``nlmmap bench`` (its impl sections).

    python benchmarks/impl_bench.py [--quick] [--json] [--rounds N] [--markdown FILE] [--plot FILE]

is ``nlmmap bench --only rx,stability,memcpy,queue,dump,tx`` with the same options; see
``nlmmap bench --help`` and docs/performance.md for what each row measures.
"""

from __future__ import annotations

import sys

from nlmmap.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--only", "rx,stability,memcpy,queue,dump,tx", *sys.argv[1:]]))
