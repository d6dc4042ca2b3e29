"""End-to-end tests: whole processes (``jidoka worker``/``server``/``run``, the Temporal server
and CLI, the Web UI) and whole lines (GitHub), killed and restarted the way they are in use."""
