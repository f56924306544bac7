"""The production recommender as an MLflow pyfunc model over the backend artifact (models from code).

``log_recommender_model(artifact_dir)`` logs, in the active MLflow run, a pyfunc model that
carries the artifact directory (``artifact.writer``) and serves it with the loader. It is
logged as *models from code*, never pickled: the model folder holds a three-line entry
script plus copies of this file (``siyu_serving.py``) and the loader (``siyu_loader.py``),
so ``mlflow.pyfunc.load_model`` and ``mlflow models serve`` work without siyu installed
(numpy, pandas, pyarrow and mlflow suffice).

Input: a frame with ``consumer_id``, ``distributor_id`` or both (either may be empty in a
row); the parameter ``k`` (default 10). A row with a consumer gets ``recommend(consumer_id,
k, distributor_id=...)`` (the distributor is the community to fall back on for consumers the
artifact does not know); a row with only a distributor gets ``for_distributor(distributor_id,
k)``; a frame of distributors alone is fine. Output: one row per recommended product,
``request`` (the input row's position), ``consumer_id``, ``distributor_id``, ``rank``,
``product_id``, ``score``, ``source``.

The model is logged with its signature and an input example (a known consumer, and a
distributor alone, from the artifact's own ids); ``predict`` is type-hinted
(``pd.DataFrame``), which MLflow takes as "validate against the signature" and which
keeps it from warning about missing type hints on every load.
"""

from __future__ import annotations

import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd

try:  # the copy logged beside this file inside an MLflow model (siyu need not be installed there)
    from siyu_loader import ID_COLUMN, Files, Recommender, load
except ImportError:  # in the pipeline itself
    from artifact.loader import ID_COLUMN, Files, Recommender, load

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo
    from mlflow.models.signature import ModelSignature

# Key of the artifact directory in the model's ``artifacts`` (pipelines.tracking reads it back).
ARTIFACT_KEY = "recommender"
DEFAULT_K = 10
MAX_K = 500
CONSUMER_ID = "consumer_id"
DISTRIBUTOR_ID = "distributor_id"
OUTPUT_COLUMNS = ("request", CONSUMER_ID, DISTRIBUTOR_ID, "rank", "product_id", "score", "source")
# Packages the logged model needs at serving time (pinned to the versions it was logged with).
SERVING_PACKAGES = ("mlflow", "numpy", "pandas", "pyarrow")

_ENTRY = '''"""siyu recommender: MLflow models-from-code entry, written by artifact.mlflow_model."""

import mlflow

try:
    from siyu_serving import RecommenderModel  # code/siyu_serving.py, logged with the model
except ImportError:  # while logging, in the pipeline's own process
    from artifact.mlflow_model import RecommenderModel

mlflow.models.set_model(RecommenderModel())
'''


class RecommenderModel(mlflow.pyfunc.PythonModel):
    """Serves the nightly lists of one artifact: consumers' lists, distributors' lists, fallbacks."""

    def __init__(self) -> None:
        self._recommender: Recommender | None = None

    def load_context(self, context: Any) -> None:
        """Open the artifact (its checksums are verified once, here)."""
        self._recommender = load(context.artifacts[ARTIFACT_KEY])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Top ``params['k']`` products per input row, as a long frame (see the module docstring).

        ``pd.DataFrame`` is a type hint MLflow infers no schema from: the signature describes the input.
        """
        if self._recommender is None:
            self.load_context(context)
        k = _k(params)
        frame = pd.DataFrame(model_input)
        if CONSUMER_ID not in frame and DISTRIBUTOR_ID not in frame:
            raise ValueError(f"input needs a '{CONSUMER_ID}' or a '{DISTRIBUTOR_ID}' column, or both")
        consumers = _ids(frame, CONSUMER_ID)
        distributors = _ids(frame, DISTRIBUTOR_ID)
        rows: list[tuple[Any, ...]] = []
        for request, (consumer, distributor) in enumerate(zip(consumers, distributors, strict=True)):
            rows.extend(
                (request, consumer, distributor, rank, *pick)
                for rank, pick in enumerate(self._lookup(consumer, distributor, k), start=1)
            )
        return pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS)).astype({"rank": "int64", "score": "float64"})

    def _lookup(self, consumer: str | None, distributor: str | None, k: int) -> list[tuple[str, float, str]]:
        assert self._recommender is not None
        if consumer is not None:
            return self._recommender.recommend(consumer, k, distributor_id=distributor)
        if distributor is not None:
            return self._recommender.for_distributor(distributor, k)
        return self._recommender.recommend("", k)  # neither id: the global list


def model_signature() -> ModelSignature:
    """Ids in (either column may be left out), ``k`` as a parameter, the long list frame out."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema(
        [ColSpec("string", CONSUMER_ID, required=False), ColSpec("string", DISTRIBUTOR_ID, required=False)]
    )
    outputs = Schema(
        [
            ColSpec("long", "request"),
            ColSpec("string", CONSUMER_ID, required=False),
            ColSpec("string", DISTRIBUTOR_ID, required=False),
            ColSpec("long", "rank"),
            ColSpec("string", "product_id"),
            ColSpec("double", "score"),
            ColSpec("string", "source"),
        ]
    )
    return ModelSignature(
        inputs=inputs, outputs=outputs, params=ParamSchema([ParamSpec("k", "long", DEFAULT_K)])
    )


def log_recommender_model(artifact_dir: Path, name: str = "recommender") -> ModelInfo:
    """Log the artifact as a pyfunc model in the active MLflow run; return MLflow's ``ModelInfo``.

    ``model_info.model_uri`` is what ``MlflowClient.create_model_version`` registers.
    """
    load(artifact_dir)  # refuse to log an artifact that does not verify
    with tempfile.TemporaryDirectory(prefix="siyu-model-") as scratch:
        folder = Path(scratch)
        entry = folder / "siyu_recommender.py"
        entry.write_text(_ENTRY, encoding="utf-8")
        from artifact import loader as artifact_loader  # not at the top: this file is copied into the model

        shutil.copyfile(Path(__file__), folder / "siyu_serving.py")
        shutil.copyfile(Path(artifact_loader.__file__), folder / "siyu_loader.py")
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(entry),
            artifacts={ARTIFACT_KEY: str(artifact_dir)},
            code_paths=[str(folder / "siyu_serving.py"), str(folder / "siyu_loader.py")],
            signature=model_signature(),
            input_example=input_example(artifact_dir),
            pip_requirements=serving_requirements(),
        )


def input_example(artifact_dir: Path) -> pd.DataFrame:
    """Two requests from the artifact's own ids: its first consumer, and its first distributor
    alone (the distributor's list); the model is checked on it when logged."""
    consumer = _first_id(Path(artifact_dir) / Files.CONSUMER_IDS)
    distributor = _first_id(Path(artifact_dir) / Files.DISTRIBUTOR_IDS)
    return pd.DataFrame({CONSUMER_ID: [consumer, None], DISTRIBUTOR_ID: [None, distributor]}, dtype=object)


def _first_id(path: Path) -> str | None:
    """The first id of an artifact's id map (read a batch, not the whole file)."""
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=1, columns=[ID_COLUMN]):
        if batch.num_rows:
            return str(batch.column(0)[0].as_py())
    return None


def serving_requirements() -> list[str]:
    """The pinned packages a serving environment needs (``mlflow==3.17.2``, ...)."""
    return [f"{package}=={metadata.version(package)}" for package in SERVING_PACKAGES]


def _k(params: dict[str, Any] | None) -> int:
    k = (params or {}).get("k", DEFAULT_K)
    if k is None:
        return DEFAULT_K
    if not 1 <= int(k) <= MAX_K:
        raise ValueError(f"parameter k must be between 1 and {MAX_K}, got {k}")
    return int(k)


def _ids(frame: pd.DataFrame, column: str) -> list[str | None]:
    """The column as text ids, None where empty (or everywhere when the column is absent)."""
    if column not in frame:
        return [None] * len(frame)
    return [None if pd.isna(value) or value == "" else str(value) for value in frame[column].tolist()]
