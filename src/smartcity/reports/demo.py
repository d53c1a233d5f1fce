"""Demo reports for `make demo`."""

from __future__ import annotations


def demo_reports(db, profile):
    yield "reports: demo data not written yet"
