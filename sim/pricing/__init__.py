"""Pricing decisions: what a package buys (``explain``), plans tuned against noise (``tune``)."""
