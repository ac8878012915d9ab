"""The training loop and its parts, one module each:

  options      TrainingOptions: the one set of training options (command lines, run configs, trainer)
  loop         Trainer: the loop itself
  guard        the non-finite guard and the step's sums, on the device (no host sync per step)
  decision     when to evaluate, save and stop (pure functions)
  feed         sampler -> DataLoader -> micro-batches; the collate contract
  checkpoints  CheckpointStore (atomic, verified by a manifest); the earlier-run check
  precision    the precision table, autocast, peak FLOP/s
  distributed  Distributed (torchrun) and the device
  rng          the random streams a resumed run continues
  runlog       log.jsonl / TensorBoard and the throughput window
"""
from .distributed import Distributed
from .loop import Trainer
from .options import TrainingOptions

__all__ = ["Distributed", "Trainer", "TrainingOptions"]
