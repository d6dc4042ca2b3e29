"""Tests of the vocabulary (``jidoka/``): config, models, policy, keys, WORKFLOW.md, prompt."""
