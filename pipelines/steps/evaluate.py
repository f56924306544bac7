"""The ``siyu evaluate`` step: every configured model × protocol on a temporal holdout, as one table.

Reads the data directory through the DuckDB engine, splits at ``last order day − holdout_days``
(or ``--as-of``), tunes the models that learn from a validation window on the days *before*
that cutoff, fits everything up to the cutoff and measures the next ``holdout_days`` with
``models.evaluation.evaluate_models``. Writes nothing but the optional JSON report.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from features.asof import AsOf
from features.columns import Table
from features.engine import connect
from features.errors import SiyuError
from features.files import write_text_atomically
from features.interactions import latest_activity
from features.vocabulary import EvaluationKey
from models.evaluation import TimeSplit, evaluate_models, make_task
from models.recommenders.training import RecommendConfig, tune_on_window

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationReport:
    """The measured table and the windows it comes from."""

    table: pd.DataFrame
    cutoff: date
    test_end: date
    k: int

    def to_json(self) -> dict[str, object]:
        return {
            EvaluationKey.CUTOFF: str(self.cutoff),
            EvaluationKey.TEST_END: str(self.test_end),
            EvaluationKey.K: self.k,
            EvaluationKey.RESULTS: json.loads(self.table.to_json(orient="records")),
        }


def contract_tables(data_dir: Path) -> dict[str, Path]:
    """The contract tables present in ``data_dir`` as Parquet files (orders and products required)."""
    tables = {
        name: data_dir / f"{name}.parquet" for name in Table.ALL if (data_dir / f"{name}.parquet").is_file()
    }
    for required in Table.REQUIRED:
        if required not in tables:
            raise SiyuError(
                f"{data_dir / (required + '.parquet')}: not found\n"
                "  fix: point --data at a directory of contract Parquet files (e.g. siyu validate's clean/)"
            )
    return tables


def run_evaluation(
    data_dir: Path,
    config: RecommendConfig,
    as_of: AsOf | date | None = None,
    holdout_days: int | None = None,
    k: int | None = None,
    model_names: list[str] | None = None,
) -> EvaluationReport:
    """Evaluate the configured models; ``as_of`` (default: the day of the latest order line) is
    the last day of the test window."""
    settings = config.evaluation
    holdout_days = holdout_days or settings.holdout_days
    k = k or settings.k
    con = connect(contract_tables(data_dir))
    last = AsOf.of(as_of if as_of is not None else latest_activity(con))
    split = TimeSplit.holdout(last, holdout_days)
    names = model_names or settings.models or list(config.models)
    unknown = [name for name in names if name not in config.models]
    if unknown:
        raise SiyuError(
            f"models {unknown} are not configured\n"
            f"  fix: use names from recommend.models: {sorted(config.models)}"
        )
    task = make_task(con, split, config.interactions)
    models = {}
    for name in names:
        model = config.models[name].build()
        models[name] = tune_on_window(model, con, split.cutoff, settings.validation_days, config.interactions)
    table = evaluate_models(models, task, k)
    return EvaluationReport(table, last.days_before(holdout_days).date, last.date, k)


def write_report(report: EvaluationReport, path: Path) -> Path:
    """Write the JSON report atomically."""
    return write_text_atomically(path, json.dumps(report.to_json(), indent=2) + "\n")
