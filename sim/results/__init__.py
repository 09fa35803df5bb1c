"""The exit seam: KPIs with intervals, tidy tables, the run folder, comparisons, plots."""
