"""ALS fitted on Spark MLlib (``pyspark.ml.recommendation.ALS``): implicit's ALS at cluster scale.

``SparkALSRecommender`` (kind ``spark_als``) takes the hyper-parameters of ``ALSRecommender``
in implicit's meaning, fits ``ALS(implicitPrefs=True)`` on the matrix's (row, column, weight)
triples as a Spark DataFrame, and collects ``userFactors`` / ``itemFactors`` back into the
numpy factor arrays ``ALSRecommender`` holds. Scoring, ``save`` / ``load``, the artifact and the
carry to newer data (one implicit half-step against the kept item factors) are
``ALSRecommender``'s own code: only the fit runs on Spark.

**The same objective.** implicit 0.7 minimises Σ c_ui (p_ui − x_u·y_i)² + λ(Σ‖x_u‖² + Σ‖y_i‖²)
with confidence c_ui = alpha·w_ui on the stored pairs (1 elsewhere) and a constant λ. Spark's
implicit ALS (Hu, Koren & Volinsky 2008 as MLlib's docs describe it) uses c_ui = 1 + alpha·r_ui,
and scales λ by the number of ratings of the row being solved (ALS-WR: regParam·n_u when it
solves consumer u, regParam·n_i for product i). The mapping:

- ratings r_ui = w_ui − 1/alpha, so that 1 + alpha·r_ui = alpha·w_ui: the same confidences.
  A pair with alpha·w_ui ≤ 1 (implicit: a confidence below 1) gets a tiny positive rating,
  i.e. a confidence of about 1 (Spark reads a rating ≤ 0 as "not preferred").
- regParam = λ / (nnz / n_consumers): Spark's penalty equals implicit's for a consumer with the
  mean number of products; lighter consumers are regularised less, heavier ones more (no single
  regParam reproduces a constant λ on both sides). With the default λ = 0.05 against confidences
  of 10 and more the penalty is small either way; ``benchmarks/spark_als_online_retail.py``
  measures the NDCG difference to implicit's ALS.

Spark solves each least-squares problem exactly (Cholesky) where implicit runs a few conjugate-
gradient steps, and starts from other random factors: the two fits agree in quality, not in digits.

**The Spark session.** The fit uses the running session (the flow's, when ``engine.kind`` is
spark, or any the caller started); without one it starts a local one (``local[num_threads]``)
for the fit and stops it after.

**Where the ratings come from.** On data that hold every row, the matrix's triples pass through
the driver. On ``partial`` data (a sample's rows only, ``InteractionData.partial``: a Spark
night's evaluation and tuning, and a ranker's component) the ratings are read from the engine's
rows (``InteractionData.engine``) and joined with the data's row and column numbers on Spark:
no consumer's rows pass through the driver, and the factors come back for every consumer. So
``rows_to_fit`` is 0 (no rows needed on the driver), except with ``bm25`` (its weighting is the
driver's).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.columns import Col
from features.errors import SiyuError
from features.vocabulary import InteractionCol
from models.recommenders.base import InteractionData, engine_rows
from models.recommenders.implicit_models import ALSRecommender, FactorStart

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

# The smallest rating handed to Spark: a pair implicit gives a confidence ≤ 1 still counts as preferred.
_MIN_RATING = 1e-6
_ID, _FEATURES = "id", "features"  # the columns of Spark's userFactors / itemFactors
_ROW, _COL, _RATING = "row", "col", "rating"
# Iterations between checkpoints of the factor RDDs: without them a long lineage overflows the
# executors' stacks (StackOverflowError after ~15 iterations on Online Retail in local mode).
_CHECKPOINT_EVERY = 5


class SparkALSRecommender(ALSRecommender):
    """implicit's ALS objective fitted by Spark MLlib; factors, scoring and artifact as ``ALSRecommender``.

    ``blocks``: Spark's numUserBlocks and numItemBlocks (partitions of each factor side).
    ``num_threads``: the cores of the local session started when none is running.
    """

    name = "spark_als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 10.0,
        iterations: int = 15,
        bm25: bool = False,
        random_state: int = 42,
        num_threads: int = 2,
        blocks: int = 4,
    ) -> None:
        super().__init__(factors, regularization, alpha, iterations, bm25, random_state, num_threads)
        self.blocks = blocks

    def warm_from(self, start: FactorStart) -> ALSRecommender:
        """Not available: pyspark's ALS cannot start from given factors."""
        raise SiyuError(
            "spark_als cannot warm-start from earlier factors (pyspark's ALS has no initial model)\n"
            "  fix: drop warm_iterations from this component, or use kind als"
        )

    def rows_to_fit(self) -> int | None:
        """0: on partial data the ratings are the engine's rows (``_engine_ratings``); with
        ``bm25``, None (the weighting runs on the driver's matrix)."""
        return None if self.bm25 else 0

    def spark_reg_param(self, data: InteractionData) -> float:
        """Spark's regParam for ``data``: implicit's λ divided by the mean products per consumer."""
        pairs = engine_rows(data).products(None).sum() if data.partial else self._weighted(data).nnz
        return self.regularization * data.shape[0] / max(int(pairs), 1)

    def _fit(self, data: InteractionData) -> None:
        from pyspark.ml.recommendation import ALS

        with _session(self.num_threads) as spark:
            _ensure_checkpoints(spark)
            ratings = self.ratings(spark, data)
            als = ALS(
                rank=self.factors,
                maxIter=self.iterations,
                regParam=self.spark_reg_param(data),
                alpha=self.alpha,
                implicitPrefs=True,
                userCol=_ROW,
                itemCol=_COL,
                ratingCol=_RATING,
                numUserBlocks=self.blocks,
                numItemBlocks=self.blocks,
                seed=self.random_state,
                checkpointInterval=_CHECKPOINT_EVERY,
            )
            model = als.fit(ratings)
            self.user_factors_ = _factor_array(model.userFactors, data.shape[0], self.factors)
            self.item_factors_ = _factor_array(model.itemFactors, data.shape[1], self.factors)
        self.solved_ = False  # Spark's own solves (ALS-WR's λ): learned, as a fitted ALS's (ALSRecommender)

    def ratings(self, spark: SparkSession, data: InteractionData) -> DataFrame:
        """The (row, col, rating) Spark fits on: the matrix's triples (``_triples``), or on
        ``partial`` data the engine's positive pairs numbered by the data's ids
        (``_engine_ratings``); the same rows either way."""
        if not data.partial:
            return spark.createDataFrame(self._triples(data))
        if self.bm25:
            raise SiyuError(
                "spark_als with bm25 weights the driver's matrix, and these data hold a sample's rows "
                "only\n  fix: set bm25 false, or fit on data with every row"
            )
        return self._engine_ratings(spark, data)

    def _engine_ratings(self, spark: SparkSession, data: InteractionData) -> DataFrame:
        from pyspark.sql import functions as F

        engine = engine_rows(data)
        sql, params = engine.positive_pairs()
        result = engine.con.execute(sql, params)
        frame = getattr(result, "frame", None)  # a SparkResult keeps the rows on Spark
        pairs = frame() if frame is not None else spark.createDataFrame(result.df())
        rows = spark.createDataFrame(_numbered(data.consumer_ids, Col.CONSUMER_ID, _ROW))
        columns = spark.createDataFrame(_numbered(data.product_ids, Col.PRODUCT_ID, _COL))
        weight = F.col(InteractionCol.WEIGHT).cast("float").cast("double")  # the matrix's float32
        rating = F.greatest(weight - F.lit(1.0 / self.alpha), F.lit(_MIN_RATING)).cast("float")
        return (
            pairs.join(rows, Col.CONSUMER_ID)
            .join(columns, Col.PRODUCT_ID)
            .select(F.col(_ROW), F.col(_COL), rating.alias(_RATING))
        )

    def _triples(self, data: InteractionData) -> pd.DataFrame:
        """(row, col, rating) of the positive pairs, ratings shifted so Spark's confidence is implicit's."""
        coo = self._weighted(data).tocoo()
        ratings = np.maximum(coo.data.astype(np.float64) - 1.0 / self.alpha, _MIN_RATING)
        return pd.DataFrame(
            {
                _ROW: coo.row.astype(np.int32),
                _COL: coo.col.astype(np.int32),
                _RATING: ratings.astype(np.float32),
            }
        )


def _numbered(ids: pd.Index, name: str, number: str) -> pd.DataFrame:
    """Each id (as ``name``) with its position (as ``number``, int32): its matrix row or column."""
    return pd.DataFrame({name: ids.astype(str), number: np.arange(len(ids), dtype=np.int32)})


def _factor_array(factors: DataFrame, n_rows: int, rank: int) -> np.ndarray:
    """Spark's (id, features) rows as a dense float32 array by id; ids Spark never saw stay zero."""
    table = factors.toArrow()
    ids = table.column(_ID).to_numpy()
    values = table.column(_FEATURES).combine_chunks().flatten().to_numpy(zero_copy_only=False)
    array = np.zeros((n_rows, rank), dtype=np.float32)
    array[ids] = values.reshape(len(ids), rank)
    return array


def _ensure_checkpoints(spark: SparkSession) -> None:
    """Give the session a checkpoint folder when it has none: under its spill folder (spark.local.dir)."""
    context = spark.sparkContext
    if context.getCheckpointDir() is not None:
        return
    spill = (context.getConf().get("spark.local.dir") or tempfile.gettempdir()).split(",")[0]
    folder = Path(spill) / "siyu_als_checkpoints"
    logger.info("spark_als: checkpoints in %s (set one on shared storage for a cluster)", folder)
    context.setCheckpointDir(str(folder))


@contextmanager
def _session(cores: int) -> Iterator[SparkSession]:
    """The running Spark session, or a local one for the block."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    running = SparkSession.getActiveSession()
    if running is None and SparkContext._active_spark_context is not None:
        running = SparkSession.builder.getOrCreate()
    if running is not None:
        yield running
        return
    from features.spark_engine import SparkConfig, spark_session

    logger.info("spark_als: no Spark session running; starting local[%d] for the fit", cores)
    with (
        tempfile.TemporaryDirectory(prefix="siyu_spark_als_") as work,
        spark_session(SparkConfig(master=f"local[{cores}]", shuffle_partitions=cores), Path(work)) as spark,
    ):
        yield spark
