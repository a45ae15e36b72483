"""Benchmarks for the chatroom server, each figure beside a minimal fan-out baseline.

Run with `python -m benchmarks` (see benchmarks/__main__.py). Absolute numbers
depend on the machine; the chatroom/baseline ratios are what to compare.
"""

from __future__ import annotations

import os

# gRPC core logs every GOAWAY a client channel receives at INFO; thousands of
# streams make that noise. Errors still show (set GRPC_VERBOSITY=info to see all).
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
