"""Capacity planning: analytic queueing estimates and the simulation search that sizes GPU pools."""
