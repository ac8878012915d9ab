"""GPU utilisation and memory sampled in a background thread while a command runs
(gpu_check.py's tune section): through NVML (nvidia-ml-py) where it imports, else nvidia-smi."""
from __future__ import annotations

import subprocess
import threading


class GpuSampler(threading.Thread):
    """GPU utilisation and memory every `every` seconds, through NVML (nvidia-ml-py) or nvidia-smi."""

    def __init__(self, every: float = 0.5):
        super().__init__(daemon=True)
        self.every, self.samples, self.source = every, [], None
        self._halt = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self._read = lambda: (pynvml.nvmlDeviceGetUtilizationRates(handle).gpu,
                                  pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20)
            self.source = "nvml"
        except Exception:
            self._read = self._smi
            self.source = "nvidia-smi" if self._smi() is not None else None

    @staticmethod
    def _smi() -> tuple[float, float] | None:
        try:
            r = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"],
                               capture_output=True, text=True, timeout=5)
            util, mem = r.stdout.splitlines()[0].split(",")
            return float(util), float(mem)
        except Exception:
            return None

    def run(self) -> None:
        while self.source and not self._halt.wait(self.every):
            value = self._read()
            if value is not None:
                self.samples.append(value)

    def stop(self) -> dict:
        self._halt.set()
        self.join(timeout=5)
        if not self.samples:
            return {"source": self.source, "samples": 0}
        util = [u for u, _ in self.samples]
        busy = [i for i, u in enumerate(util) if u > 0]
        # From the first sample with a kernel running to the last: the sweep's own span, without
        # the start-up (processes spawned, data loaded) and the end, which have no GPU work.
        span = util[busy[0]:busy[-1] + 1] if busy else []
        return {"source": self.source, "samples": len(util), "util_mean": sum(util) / len(util), "util_max": max(util),
                "busy_share": len(busy) / len(util), "span_s": len(span) * self.every,
                "util_mean_span": sum(span) / len(span) if span else 0.0, "mem_max_mib": max(m for _, m in self.samples)}
