"""`make bench`: throughput, latency and memory of the platform, per SPEC section 6."""
