"""Tests of ``activities/tracker/``: the local board, GitHub and Linear adapters."""
