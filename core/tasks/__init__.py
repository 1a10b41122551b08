"""Tasks: data, loss and evaluation for each recipe family. Tasks use models and the trainer, never
each other (shared batching helpers live in tasks/common.py)."""
