"""ALBERT (A Lite BERT) in plain PyTorch, with its trainer and tuner."""
from .config import AlbertConfig, preset
from .errors import AlbertError

__version__ = "0.1.0"

__all__ = ["AlbertConfig", "AlbertError", "preset", "__version__"]
