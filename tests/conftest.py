"""Hypothesis profiles (select one with `--hypothesis-profile NAME`; `ci` is the default).

- `ci`: what CI runs. Derandomized, so every run tests the same examples
  and a red CI reproduces locally; no deadline (onnxruntime session start-up
  varies on shared machines). Tests that set their own `max_examples` keep it;
  the fuzz tests (test_fuzz.py) take CI_EXAMPLES each.
- `thorough`: a local campaign, 50 000 fuzz examples over test_fuzz.py,
  random (add `--hypothesis-seed N` to repeat one), failures kept in the
  local example database so the next run replays them first.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

FUZZ_TESTS = 6  # test functions in test_fuzz.py
CI_EXAMPLES = 800  # per fuzz test: 4800 per CI run (the suite stays under 3 minutes on 2 cores)
THOROUGH_EXAMPLES = 50_000 // FUZZ_TESTS + 1

# Building a model and starting onnxruntime sessions is slow by hypothesis' standards.
_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile(
    "ci", max_examples=CI_EXAMPLES, deadline=None, derandomize=True, print_blob=True,
    database=None, suppress_health_check=_SLOW,
)
settings.register_profile(
    "thorough", max_examples=THOROUGH_EXAMPLES, deadline=None, print_blob=True, suppress_health_check=_SLOW,
)
settings.load_profile("ci")
