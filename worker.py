"""Run a Jidoka worker (placeholder until the worker lands)."""
