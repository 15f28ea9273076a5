"""Operator entry points: `make run` (scripts.run) and the server commands (scripts.serve)."""
