"""What the tests share: line and worker kits, fakes of the outside world, agents, helpers."""
