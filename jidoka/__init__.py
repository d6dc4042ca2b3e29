"""Jidoka: a durable orchestrator for AI coding agents on Temporal.

This package is the shared vocabulary (models, the WORKFLOW.md contract, pure policy, names).
It does no I/O besides reading a WORKFLOW.md, so workflows and activities both import it.
"""

__version__ = "0.1.0"
