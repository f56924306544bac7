"""``siyu evaluate-segments``: churn risk and expected purchases / value judged on a held-out window.

As of ``--as-of`` the models are chosen exactly as the nightly would (on the window one horizon
before, trained one horizon before that); the ``horizon_days`` after the as-of date are the
test window, read only to score. Writes ``segment_evaluation.json`` (every candidate and
baseline, the choice, the calibration table), ``churn_calibration.csv`` and
``churn_reliability.svg`` into the output folder. See docs/clv.md.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

from features.asof import AsOf
from features.clv import labelled_activity, model_frames
from features.columns import Table
from features.engine import connect
from features.errors import SiyuError
from features.sql import render
from models.churn import SegmentEvaluation, evaluate_segments
from models.segmentation import SegmentationConfig
from reporting.charts import reliability_chart

logger = logging.getLogger(__name__)

EVALUATION_JSON = "segment_evaluation.json"
CALIBRATION_CSV = "churn_calibration.csv"
RELIABILITY_SVG = "churn_reliability.svg"


def run_segment_evaluation(
    data_dir: Path, as_of: AsOf, settings: SegmentationConfig, out_dir: Path
) -> SegmentEvaluation:
    """Evaluate the churn and value models of ``settings`` as of ``as_of``; write the files."""
    candidates = (data_dir / f"{Table.ORDERS}.parquet", data_dir / Table.ORDERS)
    orders = next((path for path in candidates if path.exists()), None)
    if orders is None:
        raise SiyuError(
            f"{candidates[0]}: not found\n"
            "  fix: point --data at a directory of contract Parquet files (e.g. siyu validate's clean/)"
        )
    horizon, returns = settings.clv.horizon_days, settings.clv.returned_lines
    con = connect({Table.ORDERS: orders})
    last = con.execute(render("SELECT max({ordered_at})::DATE FROM {orders}")).fetchone()[0]
    if last is None or last < as_of.date + timedelta(days=horizon):
        raise SiyuError(
            f"{orders}: the last order is on {last}, before the end of the {horizon}-day test window "
            f"after {as_of}\n  fix: pass an earlier --as-of or a shorter --horizon-days"
        )
    train, validation, _ = model_frames(con, as_of, horizon, returns)
    test = labelled_activity(con, as_of, horizon, returns)
    evaluation = evaluate_segments(train, validation, test, settings.clv, settings.churn)
    out_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "as_of": as_of.isoformat(),
        "horizon_days": horizon,
        "buyers": {"train": len(train), "validation": len(validation), "test": len(test)},
        "chosen": evaluation.chosen,
        "test": json.loads(evaluation.test.to_json(orient="records")),
        "validation": json.loads(evaluation.validation.to_json(orient="records")),
        "calibration": json.loads(evaluation.calibration.to_json(orient="records")),
    }
    (out_dir / EVALUATION_JSON).write_text(json.dumps(document, indent=2), encoding="utf-8")
    evaluation.calibration.to_csv(out_dir / CALIBRATION_CSV, index=False)
    (out_dir / RELIABILITY_SVG).write_text(str(reliability_chart(evaluation.calibration)), encoding="utf-8")
    return evaluation
