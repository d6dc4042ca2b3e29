"""Tests of ``runtime/``: the Temporal binaries, connection and search attributes."""
