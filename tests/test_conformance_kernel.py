"""The suite against a real Linux 4.5 kernel (opt-in: collected only with NLMMAP_KERNEL=bzImage;
the image is not in CI). The kernel must pass with zero false alarms, and the features it lacks
(deliver_ring, pause_after_validate, shared_memory) must show up as skipped rules and checks."""

from __future__ import annotations

import os

from nlmmap.conformance.runner import run_conformance

ADAPTER = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "tools", "real-kernel", "nlmmap-kernel-adapter")


if os.environ.get("NLMMAP_KERNEL"):  # opt-in: without the image this module holds no test at all

    def test_real_kernel_conforms(tmp_path):
        steps = int(os.environ.get("NLMMAP_KERNEL_STEPS", 1000))
        rep = run_conformance(os.path.abspath(ADAPTER), profile="ci", max_steps=steps,
                              transcript_dir=str(tmp_path), coverage_floor=0, timeout=30.0)
        assert rep.verdict == "pass", rep.human()
        assert rep.skipped_rules.get("deliver_ring") == "SUT lacks deliver_ring"
        assert rep.check("toctou_pause").verdict == "skipped" and rep.check("toctou_race").verdict == "skipped"
