"""The ``siyu evaluate`` step: every configured model × protocol on a temporal holdout, as one table.

Reads the data directory through the DuckDB engine (or the run's connection), splits at
``last order day − holdout_days`` (or ``--as-of``), tunes the models that learn from a
validation window on the days *before* that cutoff (the window is built once for all of them),
fits everything up to the cutoff and measures the next ``holdout_days`` with
``models.evaluation.evaluate_models`` on a seeded sample of the test consumers
(``evaluation.sample_consumers``, ``evaluation.seed``): every model on the same sample.

The report keeps the fitted models and the data at the cutoff, so that production can reuse
them (``EvaluationReport.fitted``, ``models.recommenders.training.fit_production``). Writes
nothing but the optional JSON report.

``folds`` (``siyu evaluate --folds``, the nightly's ``evaluation.folds``): the rolling-origin
evaluation of ``models.recommenders.training.evaluate_folds``; ``table`` is then the mean over
folds (one row per model and protocol, intervals over the folds) and ``per_fold`` the rows of
each fold. The fitted models are fold 1's, the single window's.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from features.asof import AsOf
from features.columns import Table
from features.engine import connect
from features.errors import SiyuError
from features.files import write_text_atomically
from features.interactions import latest_activity
from features.vocabulary import EvaluationKey, MetricCol, SampleKey
from models.evaluation import CONFIDENCE_METHOD, TimeSplit, confidence_method
from models.recommenders.base import InteractionData, Recommender
from models.recommenders.training import FittedModel, RecommendConfig, evaluate_folds

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationSample:
    """The test consumers the metrics average over: ``sampled`` of ``test_consumers``, seeded."""

    test_consumers: int
    sampled: int
    seed: int
    confidence: str = CONFIDENCE_METHOD

    def to_json(self) -> dict[str, object]:
        return {
            SampleKey.TEST_CONSUMERS: self.test_consumers,
            SampleKey.SAMPLED: self.sampled,
            SampleKey.SEED: self.seed,
            SampleKey.CONFIDENCE: self.confidence,
        }


@dataclass(frozen=True)
class EvaluationReport:
    """The measured table, the windows and the sample it comes from; the fitted models (name →
    model, fitted on ``train``, the data up to ``split.cutoff``) for production to reuse."""

    table: pd.DataFrame
    cutoff: date
    test_end: date
    k: int
    sample: EvaluationSample | None = None
    split: TimeSplit | None = None
    train: InteractionData | None = field(default=None, repr=False)
    models: dict[str, Recommender] = field(default_factory=dict, repr=False)
    per_fold: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def folds(self) -> int:
        """How many rolling folds ``table`` averages over."""
        return 1 if self.per_fold is None else int(self.per_fold[MetricCol.FOLD].nunique())

    def to_json(self) -> dict[str, object]:
        report = {
            EvaluationKey.CUTOFF: str(self.cutoff),
            EvaluationKey.TEST_END: str(self.test_end),
            EvaluationKey.K: self.k,
            EvaluationKey.SAMPLE: self.sample.to_json() if self.sample is not None else None,
            EvaluationKey.RESULTS: json.loads(self.table.to_json(orient="records")),
        }
        if self.per_fold is not None and self.folds > 1:
            report[EvaluationKey.FOLDS] = json.loads(self.per_fold.to_json(orient="records"))
        return report

    def fitted(self, name: str) -> FittedModel | None:
        """Model ``name`` as this evaluation fitted it (at the split's cutoff), or None."""
        if name not in self.models or self.split is None:
            return None
        return FittedModel(name, self.models[name], self.split.cutoff)


def contract_tables(data_dir: Path) -> dict[str, Path]:
    """The contract tables present in ``data_dir`` as Parquet files or folders of Parquet parts
    (validation's ``clean/<table>.parquet/``); orders and products required."""
    tables = {
        name: data_dir / f"{name}.parquet" for name in Table.ALL if (data_dir / f"{name}.parquet").exists()
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
    con: duckdb.DuckDBPyConnection | None = None,
    folds: int | None = None,
) -> EvaluationReport:
    """Evaluate the configured models; ``as_of`` (default: the day of the latest order line) is
    the last day of the test window. ``model_names`` default: ``evaluation.models``, else all.
    ``con``: the run's connection over the clean tables; None opens one over ``data_dir``.
    ``folds``: rolling folds (default ``evaluation.folds``); sample sizes are summed over folds."""
    settings = config.evaluation
    holdout_days = holdout_days or settings.holdout_days
    k = k or settings.k
    names = chosen_models(config, model_names)
    con = con if con is not None else connect(contract_tables(data_dir))
    last = AsOf.of(as_of if as_of is not None else latest_activity(con))
    folded = evaluate_folds(con, config, names, last, folds, k, holdout_days)
    sample = EvaluationSample(
        sum(folded.test_consumers),
        sum(folded.sampled),
        settings.seed,
        confidence_method(len(folded.folds)),
    )
    task = folded.latest_task
    return EvaluationReport(
        folded.summary,
        last.days_before(holdout_days).date,
        last.date,
        k,
        sample,
        task.split,
        task.train,
        folded.latest_models,
        folded.per_fold,
    )


# Model kinds that are the simple baselines a learned model has to beat (repeat purchase,
# popularity): ``siyu evaluate`` marks the best of them and measures every model against it.
BASELINE_KINDS: tuple[str, ...] = ("repeat", "popularity")


def baseline_models(config: RecommendConfig) -> list[str]:
    """The configured models whose kind is a baseline (``BASELINE_KINDS``), in config order."""
    return [name for name, spec in config.models.items() if spec.kind in BASELINE_KINDS]


def chosen_models(config: RecommendConfig, model_names: list[str] | None) -> list[str]:
    """The models to evaluate: ``model_names``, else ``evaluation.models``, else all configured;
    an unknown name is a ``SiyuError`` naming the configured ones."""
    names = model_names or config.evaluation.models or list(config.models)
    unknown = [name for name in names if name not in config.models]
    if unknown:
        raise SiyuError(
            f"models {unknown} are not configured\n"
            f"  fix: use names from recommend.models: {sorted(config.models)}"
        )
    return names


def write_report(report: EvaluationReport, path: Path) -> Path:
    """Write the JSON report atomically."""
    return write_text_atomically(path, json.dumps(report.to_json(), indent=2) + "\n")
