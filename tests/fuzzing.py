"""Hypothesis profiles of the hostile-input suites (``tests/test_fuzz_*.py``).

* ``ci`` (the default): at most 200 examples per test, derandomized (the same
  examples every run, so CI never fails on a new random draw), no example
  database written.
* ``fuzz``: 5000 examples per test, random, failures kept in ``.hypothesis/``
  and replayed first next time. Select it with ``HYPOTHESIS_PROFILE=fuzz``
  (``make fuzz``).

A per-example deadline of 5 s turns a hang into a failure; it is generous
because the test machine may be busy (every example here takes milliseconds).
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

CI_EXAMPLES = 200
FUZZ_EXAMPLES = 5000

_common = {
    "deadline": timedelta(seconds=5),
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile(
    "ci", max_examples=CI_EXAMPLES, derandomize=True, database=None, **_common
)
settings.register_profile("fuzz", max_examples=FUZZ_EXAMPLES, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
