"""Measurement scripts (speed, memory) run from a checkout: not part of the installed package."""
