"""Governance: the append-only audit log of registry changes and per-version model cards."""
