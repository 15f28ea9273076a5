"""Development and test support: local servers and harnesses, never imported by production code."""
