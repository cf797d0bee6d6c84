"""The `--html` report: one self-contained page with the summary, the records, before/after drawings of
every rewritten region, per-output error histograms and the per-layer error curve.

    html = convrewrite.html_report(original, result.model, records=result, check=report, summary=text)
    convrewrite.write_html_report("report.html", original, result.model, records=result, check=report)
"""

from __future__ import annotations

from .page import html_report, region_count, write_html_report
from .regions import Region, find_regions

__all__ = ["html_report", "write_html_report", "region_count", "find_regions", "Region"]
