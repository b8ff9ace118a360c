"""The result of a conformance run, rendered three ways from one object: a human summary (stderr),
one JSON document (``--json``) and JUnit XML (``--junit FILE``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

__all__ = ["Report", "Check", "VERDICT_EXIT", "REPORT_SCHEMA_VERSION"]

#: verdict -> exit status (the CLI's codes: 0 pass, 1 non-conformance, 3 inconclusive, 4 internal error)
VERDICT_EXIT = {"pass": 0, "fail": 1, "inconclusive": 3, "error": 4}
REPORT_SCHEMA_VERSION = 1


@dataclass
class Check:
    """One named check of a run: ``pass``, ``fail``, ``skipped`` (with the reason) or ``not-exercised``."""

    name: str
    verdict: str
    detail: str = ""


@dataclass
class Report:
    """Everything a run found; ``verdict`` decides the exit status."""

    verdict: str
    target: str
    implementation: str = ""
    features: list[str] = field(default_factory=list)
    memory_mode: str = ""
    profile: str = "ci"
    seed: int = 0
    max_steps: int = 0
    steps: int = 0
    examples: int = 0
    requests: int = 0
    rule_counts: dict[str, int] = field(default_factory=dict)
    rule_cost: dict[str, dict[str, float]] = field(default_factory=dict)  # rule -> seconds, requests
    skipped_rules: dict[str, str] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    failure: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return VERDICT_EXIT[self.verdict]

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["report_version"] = REPORT_SCHEMA_VERSION
        d["exit_code"] = self.exit_code
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # ---- human ----------------------------------------------------------------------------------------
    def human(self) -> str:
        t = self.timings
        lines = [f"nlmmap conform: {self.verdict.upper()}  target {self.target}",
                 f"  implementation: {self.implementation or '?'}",
                 f"  features: {' '.join(sorted(self.features)) or '(none)'}; memory: {self.memory_mode or '?'}",
                 f"  profile {self.profile}, seed {self.seed}: {self.steps} steps in {self.examples} examples, "
                 f"{self.requests} requests, {t.get('total', 0):.1f} s"
                 + (f" ({self.steps / t['state_machine']:.0f} steps/s)" if t.get("state_machine") else "")]
        cov = self.coverage
        if cov:
            a, e = cov.get("actions", {}), cov.get("edges", {})
            lines.append(f"  coverage: actions {a.get('hit')}/{a.get('reachable')}"
                         + (f" (missing {', '.join(a['missing'])})" if a.get("missing") else ""))
            if e.get("reachable") is None:
                lines.append(f"  coverage: status-machine edges {e.get('hit')} observed; {e.get('note', '')}")
            else:
                lines.append(f"  coverage: status-machine edges {e.get('hit')}/{e.get('reachable')} reachable "
                             f"({e.get('percent')}%)" + (f"; missing {e['missing'][:6]}" if e.get("missing") else ""))
        for c in self.checks:
            lines.append(f"  check {c.name}: {c.verdict}" + (f" ({c.detail})" if c.detail else ""))
        for r, why in sorted(self.skipped_rules.items()):
            lines.append(f"  skipped rule {r}: {why}")
        for n in self.notes:
            lines.append(f"  note: {n}")
        f = self.failure
        if f:
            lines.append("")
            lines.append(f.get("text", ""))
            if f.get("transcript"):
                lines.append(f"  transcript: {f['transcript']}  (nlmmap conform --replay {f['transcript']} ...)")
            if f.get("reproducer"):
                lines.append("  Hypothesis reproducer:")
                lines += ["    " + ln for ln in f["reproducer"].splitlines()]
            if f.get("stderr_tail"):
                lines.append("  SUT stderr (last lines):")
                lines += ["    | " + ln for ln in f["stderr_tail"].splitlines()]
        return "\n".join(lines) + "\n"

    # ---- JUnit ----------------------------------------------------------------------------------------
    def junit(self) -> str:
        cases = []
        fail_n = skip_n = 0
        for c in self.checks:
            body = ""
            if c.verdict == "fail":
                fail_n += 1
                text = (self.failure or {}).get("text", c.detail) if c.name == "state_machine" else c.detail
                body = f"<failure message={quoteattr(c.detail[:200])}>{escape(text)}</failure>"
            elif c.verdict in ("skipped", "not-exercised"):
                skip_n += 1
                body = f"<skipped message={quoteattr(c.detail or c.verdict)}/>"
            cases.append(f'  <testcase classname="nlmmap.conformance" name={quoteattr(c.name)}>{body}</testcase>')
        for r, why in sorted(self.skipped_rules.items()):
            skip_n += 1
            cases.append(f'  <testcase classname="nlmmap.conformance.rules" name={quoteattr(r)}>'
                         f'<skipped message={quoteattr(why)}/></testcase>')
        if self.verdict in ("inconclusive", "error") and self.failure:
            cases.append(f'  <testcase classname="nlmmap.conformance" name="run"><error message='
                         f'{quoteattr(self.verdict)}>{escape(self.failure.get("text", ""))}</error></testcase>')
        errs = 1 if self.verdict in ("inconclusive", "error") and self.failure else 0
        return (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="nlmmap conform" tests="{len(cases)}" '
                f'failures="{fail_n}" errors="{errs}" skipped="{skip_n}" time="{self.timings.get("total", 0):.3f}">\n'
                + "\n".join(cases) + "\n</testsuite>\n")
