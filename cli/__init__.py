"""The ``jidoka`` console: thin commands over the client, the worker and the vocabulary."""
