"""Churn and expected purchases on Online Retail II as of 2010-09-09, 90-day horizon (issue #12 targets).

    python benchmarks/churn_online_retail.py [--data /tmp/data/online_retail] [--out /tmp/churn/or]

``--data`` is the contract folder written by ``siyu import online-retail``. The models are chosen
as the nightly would (``siyu evaluate-segments``, returns as separate refund lines: ``returned_lines:
subtracted``), then every candidate and baseline is scored on the 90 days after the as-of date and
checked against the targets: churn AUC >= 0.76 and a Brier score below the logistic regression on
recency + frequency; expected purchases MAE <= 0.85 per buyer and total bias within +-10 %.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from features.asof import AsOf
from models.clv import CLVConfig
from models.segmentation import SegmentationConfig
from pipelines.steps.evaluate_segments import run_segment_evaluation

AS_OF = AsOf.of("2010-09-09")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/data/online_retail"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/churn/online_retail_eval"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = SegmentationConfig(clv=CLVConfig(returned_lines="subtracted", horizon_days=90))
    evaluation = run_segment_evaluation(args.data, AS_OF, settings, args.out)
    table = evaluation.test.pivot_table(
        index=["target", "role", "candidate"], columns="metric", values="value"
    )
    print(f"chosen on the window before {AS_OF}: {evaluation.chosen}")
    print(table.round(4).to_string())
    churn = table.loc[("churn", "chosen", evaluation.chosen["churn"])]
    rf_brier = table.loc[("churn", slice(None), "logistic_rf"), "brier"].iloc[0]
    purchases = table.loc[("purchases", "chosen", evaluation.chosen["purchases"])]
    print("\ntargets (chosen model):")
    print(f"  churn AUC {churn['auc']:.4f} (target >= 0.76): {'met' if churn['auc'] >= 0.76 else 'NOT met'}")
    met = "met" if churn["brier"] < rf_brier else "NOT met"
    print(f"  churn Brier {churn['brier']:.4f} vs logistic on recency + frequency {rf_brier:.4f}: {met}")
    met = "met" if purchases["mae"] <= 0.85 else "NOT met"
    print(f"  purchases MAE {purchases['mae']:.4f} (target <= 0.85): {met}")
    met = "met" if abs(purchases["bias_pct"]) <= 10 else "NOT met"
    print(f"  purchases total bias {purchases['bias_pct']:+.1f} % (target within +-10 %): {met}")


if __name__ == "__main__":
    main()
