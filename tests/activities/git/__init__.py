"""Tests of ``activities/git/``: how a line reaches its repository."""
