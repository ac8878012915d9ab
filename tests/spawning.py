"""For tests that start a real process group (torch.multiprocessing.spawn, gloo on the CPU)."""
from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port nobody listens on now: the group's rendezvous (MASTER_PORT)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
