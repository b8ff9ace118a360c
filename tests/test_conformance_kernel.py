"""The suite against a real Linux 4.5 kernel (opt-in: collected only with NLMMAP_KERNEL=bzImage;
the image is not in CI). The kernel must pass with zero false alarms, and the features it lacks
(deliver_ring, pause_after_validate, shared_memory, dump, the munmap op) must show up as skipped
rules and checks with their reasons.

    NLMMAP_KERNEL=/tmp/kprobe/4.5/bzImage pytest -q tests/test_conformance_kernel.py
    NLMMAP_KERNEL=/tmp/kprobe/4.5/bzImage NLMMAP_KERNEL_STEPS=20000 pytest -q tests/test_conformance_kernel.py

``NLMMAP_KERNEL_STEPS`` (default 1000, about half a minute) sets the budget; 20000 is the ci
profile (about 8 minutes at ~40 steps/s), which also holds the run to 100% of the reachable edges.
"""

from __future__ import annotations

import os

from nlmmap.conformance.runner import run_conformance

ADAPTER = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "tools", "real-kernel", "nlmmap-kernel-adapter")


if os.environ.get("NLMMAP_KERNEL"):  # opt-in: without the image this module holds no test at all

    def test_real_kernel_conforms(tmp_path):
        steps = int(os.environ.get("NLMMAP_KERNEL_STEPS", 1000))
        rep = run_conformance(os.path.abspath(ADAPTER), profile="ci", max_steps=steps, transcript_dir=str(tmp_path),
                              coverage_floor=None if steps >= 20000 else 0, timeout=30.0, shrink_seconds=120)
        assert rep.verdict == "pass", rep.human()
        for rule, feature in (("deliver_ring", "deliver_ring"), ("pause_and_rewrite", "pause_after_validate"),
                              ("dump", "dump"), ("munmap_rings", "op:munmap")):
            assert rep.skipped_rules.get(rule) == f"SUT lacks {feature}", rep.skipped_rules
        assert rep.check("toctou_pause").verdict == "skipped" and rep.check("toctou_race").verdict == "skipped"
        # the rules a real kernel does serve ran: multicast to several members, SKIP at its cursor
        assert rep.rule_counts.get("multicast_members") and rep.rule_counts.get("skip_at_cursor"), rep.rule_counts
