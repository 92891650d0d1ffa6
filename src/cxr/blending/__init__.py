"""Blending: methods as pure functions of (OOF matrix, targets) and their nested (honest)
evaluation (methods), and the rule that names a weak fold (weak_folds)."""
