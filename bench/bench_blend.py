"""Blending speed: every method with nested evaluation on 10 models x 10,000 OOF rows, and the
project's vectorized AUC against scikit-learn's roc_auc_score.

    python bench/bench_blend.py                     # target: the whole blend under 60 s on 2 cores
    python bench/bench_blend.py --models 10 --rows 10000 --trials 300 --bags 10

The OOF matrix is synthetic (correlated models of different strength, 5 folds); nothing is
read from disk. Prints seconds per method (fit on all rows + 5 nested refits) and in all."""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from cxr.blending.methods import methods, nested_predictions  # noqa: E402
from cxr.metrics.auc import roc_auc  # noqa: E402


def synthetic_oof(n_models, n_rows, seed=0):
    """Probabilities of `n_models` correlated models of increasing strength, their targets, 5 folds."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n_rows) < 0.3).astype(int)
    shared = rng.normal(size=n_rows)
    strength = np.linspace(0.5, 1.5, n_models)
    logits = y[:, None] * strength + 0.6 * shared[:, None] + rng.normal(size=(n_rows, n_models))
    return 1 / (1 + np.exp(-logits)), y, rng.permutation(np.arange(n_rows) % 5)


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--bags", type=int, default=10)
    args = parser.parse_args()
    P, y, folds = synthetic_oof(args.models, args.rows)

    one = best_of(lambda: roc_auc(y, P[:, 0]), 20)
    one_sk = best_of(lambda: roc_auc_score(y, P[:, 0]), 20)
    all_cols = best_of(lambda: roc_auc(y, P), 10)
    all_sk = best_of(lambda: [roc_auc_score(y, P[:, j]) for j in range(P.shape[1])], 10)
    assert np.allclose(roc_auc(y, P), [roc_auc_score(y, P[:, j]) for j in range(P.shape[1])])
    print(f"AUC of {args.rows} rows: 1 column {one * 1e3:.2f} ms vs sklearn {one_sk * 1e3:.2f} ms "
          f"({one_sk / one:.1f}x); {args.models} columns at once {all_cols * 1e3:.2f} ms vs sklearn "
          f"{all_sk * 1e3:.2f} ms ({all_sk / all_cols:.1f}x)")

    total = time.perf_counter()
    for method in methods(n_trials=args.trials, seed=0, bags=args.bags):
        start = time.perf_counter()
        params = method.fit(P, y)
        in_sample = roc_auc(y, method.combine(P, params))
        nested = roc_auc(y, nested_predictions(method, P, y, folds))
        print(f"{method.name:<14} {time.perf_counter() - start:6.2f} s   OOF AUC {in_sample:.4f}   nested {nested:.4f}",
              flush=True)
    total = time.perf_counter() - total
    print(f"every method, {args.models} models x {args.rows} rows, Optuna {args.trials} trials, {args.bags} bags, "
          f"nested evaluation included: {total:.1f} s ({'under' if total < 60 else 'OVER'} the 60 s target)")


if __name__ == "__main__":
    main()
