"""The fuzz campaign's two Hypothesis profiles, and the seed it runs with.

* ``ci`` (used unless another profile is loaded): derandomized, so ``make test`` explores the
  same examples on every run and a failure in CI reproduces on any machine; a small budget per
  property (each test file says how many examples its properties take).
* ``fuzz`` (``make fuzz``, ``--hypothesis-profile=fuzz``): ``JIDOKA_FUZZ_EXAMPLES`` examples
  per property (default 10,000), random, reproducible with the seed printed in the header
  (``--hypothesis-seed``; ``make fuzz FUZZ_SEED=...``).

The profiles are applied per test through :func:`tests.fuzz.support.fuzzing`, never loaded
globally: the rest of the suite keeps Hypothesis' own defaults.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

_SUPPRESSED = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
    HealthCheck.large_base_example,
]

settings.register_profile(
    "ci",
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=_SUPPRESSED,
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("JIDOKA_FUZZ_EXAMPLES", "10000")),
    derandomize=False,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=_SUPPRESSED,
)


def pytest_report_header(config: pytest.Config) -> str:
    profile = settings.get_current_profile_name()
    seed = config.getoption("hypothesis_seed", default=None)
    if profile != "fuzz":
        return "jidoka fuzz: profile ci (derandomized, small budget)"
    examples = settings.get_profile("fuzz").max_examples
    shown = seed if seed is not None else "random per test (pass --hypothesis-seed to pin it)"
    return f"jidoka fuzz: profile fuzz, {examples} examples per property, seed {shown}"
