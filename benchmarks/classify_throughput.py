"""Series-type classifier throughput: training and prediction, series per second.

Generates one row per series (the generator's sites and habits), fits each model on
--train rows and predicts --predict rows, and prints a table (and JSON).

  python benchmarks/classify_throughput.py                       # 1,000,000 rows predicted
  python benchmarks/classify_throughput.py --train 50000 --predict 200000 --models logreg,rf,adapted

`adapted` is the model that adapts to an archive with no labels
(curate.classify.adapt_to_archive): it is fitted on an A-like generated archive of about
--train images (its fit includes the default model's predictions and the rules) and
predicts images of that archive.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchlib import RESULTS_DIR, peak_rss_kib, write_json


def peak_rss_mb() -> float:
    return (peak_rss_kib() or 0) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=100_000, help="series to train on")
    parser.add_argument("--predict", type=int, default=1_000_000, help="series to predict")
    parser.add_argument("--models", default="logreg,rf,adapted")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "classify_throughput.json")
    args = parser.parse_args()

    from curate.classify import RuleLabeler, SeriesTypeClassifier, adapt_to_archive
    from curate.classify.archives import generate_archive
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
        if name == "adapted":
            archive = generate_archive("A", studies=max(10, int(args.train / 1.55)), seed=0)
            fit_rows = archive.drop(columns=["series_type", "site"])
            predict_rows = generate_archive("A", studies=max(10, int(len(X_chunk) / 1.55)), seed=1)
            predict_rows = predict_rows.drop(columns=["series_type", "site"])
            start = time.perf_counter()
            model = adapt_to_archive(fit_rows)
        else:
            fit_rows, predict_rows = X_train, X_chunk
            model = SeriesTypeClassifier(model=name, n_estimators=100)
            start = time.perf_counter()
            model.fit(X_train, y_train)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(repeats):
            model.predict(predict_rows)
        predict_s = time.perf_counter() - start
        rows.append(
            {
                "model": name,
                "train_series": len(fit_rows),
                "fit_s": fit_s,
                "train_series_per_s": len(fit_rows) / fit_s,
                "predicted_series": len(predict_rows) * repeats,
                "predict_s": predict_s,
                "predict_series_per_s": len(predict_rows) * repeats / predict_s,
                "peak_rss_mb": peak_rss_mb(),
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
            "peak_rss_mb": peak_rss_mb(),
        }
    )

    print(f"\ngenerated {len(train) + len(chunk):,} series in {generated:.1f} s\n")
    print(
        f"{'model':<8}{'train':>10}{'fit s':>9}{'train/s':>11}{'predicted':>12}{'predict s':>11}{'predict/s':>12}"
        f"{'peak MB':>9}"
    )
    for r in rows:
        train_rate = f"{r['train_series_per_s']:,.0f}" if r["train_series_per_s"] else "-"
        print(
            f"{r['model']:<8}{r['train_series']:>10,}{r['fit_s']:>9.1f}{train_rate:>11}"
            f"{r['predicted_series']:>12,}{r['predict_s']:>11.1f}{r['predict_series_per_s']:>12,.0f}"
            f"{r['peak_rss_mb']:>9,.0f}"
        )
    write_json(args.json, {"results": rows})


if __name__ == "__main__":
    main()
