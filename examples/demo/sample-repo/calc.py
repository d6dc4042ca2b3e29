"""A tiny calculator: the project the demo's agents work on."""


def add(a: float, b: float) -> float:
    return a + b
