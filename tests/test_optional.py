"""albert/optional.py: the one place optional packages are imported."""
import subprocess
import sys

import pytest

from albert import optional


def test_only_declared_packages_load_and_a_missing_one_is_an_import_error(monkeypatch):
    with pytest.raises(ValueError, match="not declared in albert/optional.py"):
        optional.load("numpy")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ImportError):
        optional.load("ray")


def test_the_core_modules_start_without_the_optional_packages():
    code = ("import sys, albert.finetune, albert.pretrain, albert.tune.command, albert.tune.report; "
            "print(sorted(m for m in ('ray', 'matplotlib', 'torch.utils.tensorboard') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
