"""Pure parsers: bytes in, dicts out. No sockets, no clocks, no asyncio.

The receive time is always an argument, so every parser is deterministic and
testable on raw bytes alone.
"""
