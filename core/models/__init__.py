"""The models: recurrent stacks, one model per kind (config dataclass + step function), save/load."""
