"""Makes the helper modules beside this file (synthetic_text, assertions) importable from the test
folders that mirror the package (tests/data, tests/train, ...), and under ALBERT_REQUIRE_EXTRAS=1
turns a skip for a package that cannot be imported into a failure."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))



# CI installs every extra (.ci/run sets ALBERT_REQUIRE_EXTRAS): there a test that skips because a
# package cannot be imported (pytest.importorskip) fails instead of passing unseen.
REQUIRE_EXTRAS = os.environ.get("ALBERT_REQUIRE_EXTRAS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_EXTRAS and report.skipped and call.excinfo is not None \
            and "could not import" in str(call.excinfo.value):
        report.outcome = "failed"
        report.longrepr = f"{call.excinfo.value} (ALBERT_REQUIRE_EXTRAS=1: CI installs every extra)"
