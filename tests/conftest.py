"""Makes the helper modules beside this file (synthetic_text, assertions) importable from the test
folders that mirror the package (tests/data, tests/train, ...)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

