"""Training: the epoch loop, prediction and checkpoints (engine), losses, the recipe (optimizer,
schedule, EMA, balance), one fold's whole run with its divergence guard (fold_run),
distributed training, the overfit check."""
