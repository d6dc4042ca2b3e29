"""Tests of ``activities/agent/``: adapters, the supervisor and the scripted agent."""
