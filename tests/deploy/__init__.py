"""Tests of ``deploy/``: the worker's runtime contract in every deployment file."""
