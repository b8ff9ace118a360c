"""nlmmap.impl.bench: the implementation's measurements behind ``nlmmap bench``.

``harness`` (samples, interleaved rounds, medians and spread, CPU placement, progress),
``machine`` (what the figures were measured on), ``rx``, ``queue``, ``dump``, ``tx`` (the
variants, each one measurement from scratch against a kernel-side process), ``suite`` (which
rows and ratios, with the bars of design.md section 7 and the seed's figures), ``report`` (the
JSON document, its Markdown and the plot). Nothing here is imported by the implementation itself.

>>> from nlmmap.impl.bench import BenchConfig
>>> BenchConfig(quick=True).count(600_000)
120000
"""

from .harness import Placement, Progress, Sample
from .machine import load_average, machine_info
from .report import build_report, compute_ratios, plot, to_markdown
from .suite import IMPL_SECTIONS, BenchConfig, run_impl

__all__ = ["BenchConfig", "IMPL_SECTIONS", "Placement", "Progress", "Sample", "build_report", "compute_ratios",
           "load_average", "machine_info", "plot", "run_impl", "to_markdown"]
