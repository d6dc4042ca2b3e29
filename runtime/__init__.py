"""Process edges shared by the CLI, the worker, the starter and the test fixtures:
locating the bundled Temporal binaries, connecting a client, registering search attributes."""
