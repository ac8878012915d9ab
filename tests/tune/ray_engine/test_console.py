"""The --backend ray console: our status lines on the terminal, everything Ray prints in ray.log."""
import sys

from albert.tune.ray_engine import console as console_module
from albert.tune.ray_engine.console import RayConsole


def test_what_ray_prints_while_a_status_line_is_written_goes_to_ray_log(tmp_path, capfd, monkeypatch):
    """Ray's log thread prints the trials' relayed output (its "Checkpoint successfully created"
    lines) at any moment. The status line used to be written with sys.stdout and sys.stderr
    swapped to the console, so a line relayed at that moment reached the terminal (seen once in
    tests/tune/test_ray_real.py::test_gp_sweep_on_ray). Here the print happens while the status
    line is made, the moment that raced."""
    log = tmp_path / "ray.log"
    # sys.stdout on file descriptor 1, as in tune.py (pytest's own capture writes around it).
    monkeypatch.setattr(sys, "stdout", open(1, "w", buffering=1, closefd=False))

    def status_line(*args) -> str:
        print("relayed by Ray's log thread")
        return "[sweep] 0/1 trials done"

    monkeypatch.setattr(console_module, "status_line", status_line)
    with RayConsole(log, progress=True) as console:
        console.watch(budget=1, max_resource=1, metric_name="accuracy", mode="max", order=lambda trial, config: (0,))
        console.step_end([])
        console.experiment_end([])
    out, err = capfd.readouterr()
    assert "[sweep] 0/1 trials done" in out + err
    assert "relayed" not in out + err
    assert "relayed by Ray's log thread" in log.read_text()
