"""Compute targets and the executors that bring a step to them (contract 6 of the architecture)."""
