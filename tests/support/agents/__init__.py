"""Test helpers for the agent adapters: fake agents speaking real wire formats, transcripts."""
