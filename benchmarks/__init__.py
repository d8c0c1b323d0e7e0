"""Streaming-latency benchmarks for acytoo_raw against aiohttp, httpx and a raw-socket floor.

Run with ``python -m benchmarks`` (``--quick`` for a one-minute run); see ``benchmarks/README.md``.
Nothing in the library or its tests imports this package.
"""
