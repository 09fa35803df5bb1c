"""Helpers shared by the test layers (scenarios, harnesses, golden digests)."""
