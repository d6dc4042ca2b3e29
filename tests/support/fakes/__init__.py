"""Fakes of the outside world that tests serve for real: an in-memory GitHub (REST v3) and a
git smart-HTTP server, both demanding a token the way the real services do."""
