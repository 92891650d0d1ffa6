"""Blending: each model's OOF and test predictions checked (inputs), methods as pure functions of
(OOF matrix, targets) and their nested (honest) evaluation (methods), the report that scores and
chooses (report), a multi-class task's blend scored as rows of class probabilities (classes), the
rule that names a weak fold (weak_folds), a study's prediction from its images' (studies), and blend.json (spec)."""
