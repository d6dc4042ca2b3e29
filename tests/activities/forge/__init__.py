"""Tests of ``activities/forge/``: the GitHub forge reader and merger."""
