"""Assertions shared by tests of user-facing errors."""
from __future__ import annotations

import pytest


def one_line_error(excinfo: pytest.ExceptionInfo, *needles: str) -> str:
    """The AlbertError's message, checked to be one line containing every needle."""
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg
