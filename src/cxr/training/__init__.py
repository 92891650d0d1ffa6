"""Training: the epoch loop, prediction and checkpoints (engine), losses, the recipe (optimizer,
schedule, EMA, balance), one fold's whole run with its divergence guard (fold_run), a fold's runs
over seeds (seed_runs), distributed training, the overfit check (overfit), and the
learning-rate range test (lr_range)."""
