"""Shared test settings."""
import pytest

from utils.threads import single_thread


@pytest.fixture(autouse=True, scope="session")
def single_torch_thread():
    """The tests' models are tiny: one thread is fastest, and never stalls on a busy 2-core machine."""
    with single_thread():
        yield


# Fixtures that train models or run the whole pipeline: every test using one is slow (skipped by
# `-m "not slow"`, run by the full suite).
SLOW_FIXTURES = {"full_run", "shadow_run", "llla", "paper_llla", "imagenet_weights"}
# Tests that train models, build large ones or simulate many reference models themselves.
SLOW_TESTS = {"test_amp_recorded_and_mismatched_loads_name_the_flag",
              "test_lira_reaches_the_optimal_auroc_on_gaussian_signals",   # 128 models x 20,000 samples
              "test_llla_marglik_through_the_factory",
              "test_a_checkpoint_trained_on_other_indices_is_flagged",
              "test_resnet50_replaces_the_classifier_and_accepts_small_images",
              "test_examples_run",   # docs/audit_your_model.md's examples: trains small models
              "test_command_imports_the_model_from_the_current_folder",   # three commands in subprocesses
              "test_dp_model_bounds_stay_below_the_accountants_epsilon"}   # four digits models, two with DP-SGD


def pytest_collection_modifyitems(config, items):
    """Mark the tests that use :data:`SLOW_FIXTURES` or are named in :data:`SLOW_TESTS` slow."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or item.originalname in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
