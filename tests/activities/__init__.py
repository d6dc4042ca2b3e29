"""Tests of the activities (``activities/``): the only I/O."""
