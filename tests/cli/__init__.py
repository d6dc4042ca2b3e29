"""Tests of ``cli/``: the ``jidoka`` console as a user runs it."""
