"""Signing, JWT, Redis, configuration and response helpers shared by every service.

Import the submodules (`from shared import signing`, `from shared.config import Settings`):
the package itself imports nothing, so each caller pays only for what it uses.
"""
