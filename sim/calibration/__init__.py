"""Workload presets fitted on real traces and their real-vs-simulated report."""
