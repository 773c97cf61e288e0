"""Series-type classifier throughput: training and prediction, series per second.

Generates one row per series (the generator's sites and habits), fits each model on
--train rows and predicts --predict rows, and prints a table (and JSON).

  python benchmarks/classify_throughput.py                       # 1,000,000 rows predicted
  python benchmarks/classify_throughput.py --train 50000 --predict 200000 --models logreg,rf
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchlib import RESULTS_DIR, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=100_000, help="series to train on")
    parser.add_argument("--predict", type=int, default=1_000_000, help="series to predict")
    parser.add_argument("--models", default="logreg,rf")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "classify_throughput.json")
    args = parser.parse_args()

    from curate.classify import RuleLabeler, SeriesTypeClassifier
    from curate.classify.synth import generate

    started = time.perf_counter()
    train = generate(args.train, sites=10, seed=0, instances=False)
    chunk = generate(min(args.predict, 200_000), sites=10, seed=1, instances=False)
    generated = time.perf_counter() - started
    X_train, y_train = train.drop(columns=["series_type", "site"]), train.series_type
    X_chunk = chunk.drop(columns=["series_type", "site"])
    repeats = max(1, round(args.predict / len(X_chunk)))
    rows = []
    for name in args.models.split(","):
        model = SeriesTypeClassifier(model=name, n_estimators=100)
        start = time.perf_counter()
        model.fit(X_train, y_train)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(repeats):
            model.predict(X_chunk)
        predict_s = time.perf_counter() - start
        rows.append(
            {
                "model": name,
                "train_series": len(X_train),
                "fit_s": fit_s,
                "train_series_per_s": len(X_train) / fit_s,
                "predicted_series": len(X_chunk) * repeats,
                "predict_s": predict_s,
                "predict_series_per_s": len(X_chunk) * repeats / predict_s,
            }
        )
    start = time.perf_counter()
    RuleLabeler().predict(X_chunk)
    rules_s = time.perf_counter() - start
    rows.append(
        {
            "model": "rules",
            "train_series": 0,
            "fit_s": 0.0,
            "train_series_per_s": None,
            "predicted_series": len(X_chunk),
            "predict_s": rules_s,
            "predict_series_per_s": len(X_chunk) / rules_s,
        }
    )

    print(f"\ngenerated {len(train) + len(chunk):,} series in {generated:.1f} s\n")
    print(f"{'model':<8}{'train':>10}{'fit s':>9}{'train/s':>11}{'predicted':>12}{'predict s':>11}{'predict/s':>12}")
    for r in rows:
        train_rate = f"{r['train_series_per_s']:,.0f}" if r["train_series_per_s"] else "-"
        print(
            f"{r['model']:<8}{r['train_series']:>10,}{r['fit_s']:>9.1f}{train_rate:>11}"
            f"{r['predicted_series']:>12,}{r['predict_s']:>11.1f}{r['predict_series_per_s']:>12,.0f}"
        )
    write_json(args.json, {"results": rows})


if __name__ == "__main__":
    main()
