"""Processors: the Faust app (thin agents) and the pure analysis logic they call."""
