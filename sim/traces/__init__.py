"""Real request traces: readers for the public formats, their statistics, replay by day.

This layer knows files and arrays only; the scenario layer names the fields in its errors.
"""
