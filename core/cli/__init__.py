"""The ``rnnkit`` subcommands that need torch: train, generate, eval, data."""
