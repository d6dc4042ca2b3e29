"""Forge adapters: what the review loop reads of a change request, and its merge."""
