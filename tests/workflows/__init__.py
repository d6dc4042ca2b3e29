"""Tests of ``workflows/``: the issue and line workflows on real Temporal servers."""
