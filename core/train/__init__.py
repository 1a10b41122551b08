"""The model-agnostic trainer and what it needs: device, precision, DDP, optimizers, schedules,
checkpoints, regularisers, weight averaging, the run log."""
