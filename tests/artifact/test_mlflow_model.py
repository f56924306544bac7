"""The MLflow pyfunc model over the artifact: logged without pickle, loaded back, served, self-contained."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from artifact import mlflow_model as serving
from artifact.loader import load
from artifact.mlflow_model import log_recommender_model
from pipelines import tracking
from tests.artifact.test_writer import write_sample


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """The sample artifact logged once in a throw-away MLflow store: (model URI, artifact, store folder).

    MLflow's fluent API points at that store until the module's tests are done.
    """
    root = tmp_path_factory.mktemp("mlflow")
    artifact = write_sample(root / "artifact")
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    experiment = mlflow.create_experiment("serving-test", artifact_location=(root / "mlartifacts").as_uri())
    try:
        with mlflow.start_run(experiment_id=experiment):
            info = log_recommender_model(artifact)
        yield info.model_uri, artifact, root
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def model(logged: tuple[str, Path, Path]) -> mlflow.pyfunc.PyFuncModel:
    return mlflow.pyfunc.load_model(logged[0])


def test_the_loaded_model_serves_the_artifacts_lists(model: mlflow.pyfunc.PyFuncModel, logged) -> None:
    requests = pd.DataFrame({"consumer_id": ["C1", "new", None], "distributor_id": [None, "D1", "D1"]})
    served = model.predict(requests, params={"k": 3})
    assert list(served.columns) == list(serving.OUTPUT_COLUMNS)
    recommender = load(logged[1])
    expected = [
        *recommender.recommend("C1", 3),
        *recommender.recommend("new", 3, distributor_id="D1"),
        *recommender.for_distributor("D1", 3),
    ]
    assert list(served["product_id"]) == [pick.product_id for pick in expected]
    assert list(served["source"]) == [pick.source for pick in expected]
    assert list(served["request"]) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert list(served["rank"]) == [1, 2, 3] * 3


def test_k_is_a_parameter_with_a_default(model: mlflow.pyfunc.PyFuncModel) -> None:
    params = {spec.name: spec for spec in model.metadata.signature.params}
    assert params["k"].default == serving.DEFAULT_K
    one_column = pd.DataFrame({"consumer_id": ["C1"]})  # distributor_id is optional
    assert len(model.predict(one_column, params={"k": 2})) == 2
    assert len(model.predict(one_column)) == 6  # default k=10; the sample holds six products
    with pytest.raises(Exception, match="k must be between 1 and"):
        model.predict(one_column, params={"k": 0})


def test_the_model_is_code_and_arrays_never_a_pickle(logged) -> None:
    model_dir = Path(mlflow.artifacts.download_artifacts(logged[0], dst_path=str(logged[2] / "download")))
    flavor = yaml.safe_load((model_dir / "MLmodel").read_text())["flavors"]["python_function"]
    assert "model_code_path" in flavor and "python_model" not in flavor
    assert not [p for p in model_dir.rglob("*") if p.suffix in (".pkl", ".pickle", ".cloudpickle")]
    assert sorted(p.name for p in (model_dir / "code").iterdir()) == ["siyu_loader.py", "siyu_serving.py"]
    stored = model_dir / flavor["artifacts"][serving.ARTIFACT_KEY]["path"]
    assert load(stored).recommend("C1", 1)[0].product_id == "P1"
    requirements = (model_dir / "requirements.txt").read_text().split()
    assert {r.split("==")[0] for r in requirements} == set(serving.SERVING_PACKAGES)


def test_the_registry_hands_back_the_artifact(logged) -> None:
    """The champion's artifact, as the flow downloads it to republish, is the one that was logged."""
    assert serving.ARTIFACT_KEY == tracking.ARTIFACT_KEY
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{logged[2] / 'mlflow.db'}")
    client.create_registered_model("serving-test-model")
    version = client.create_model_version("serving-test-model", source=logged[0])
    downloaded = tracking.download_model_artifact(
        client, "serving-test-model", version.version, logged[2] / "registry-download"
    )
    manifest = json.loads((downloaded / "manifest.json").read_text())
    assert manifest["meta"]["as_of"] == "2025-03-31"
    assert load(downloaded).recommend("C3", 1)[0].product_id == "P4"


def test_the_logged_model_loads_without_siyu(logged) -> None:
    """A serving host with mlflow, pandas, numpy and pyarrow but no siyu packages can load it."""
    model_dir = Path(mlflow.artifacts.download_artifacts(logged[0], dst_path=str(logged[2] / "alone")))
    script = textwrap.dedent(f"""
        import sys

        class Forbid:
            def find_spec(self, name, path=None, target=None):
                siyu_packages = ("pipelines", "features", "models", "sources", "artifact", "reporting")
                if name.split(".")[0] in siyu_packages:
                    raise ImportError(f"siyu is not installed here: {{name}}")
                return None

        sys.meta_path.insert(0, Forbid())
        import mlflow
        import pandas as pd

        model = mlflow.pyfunc.load_model({str(model_dir)!r})
        served = model.predict(pd.DataFrame({{"consumer_id": ["C1"]}}), params={{"k": 2}})
        print(list(served["product_id"]))
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=logged[2])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "['P1', 'P2']"


def test_a_frame_of_distributors_alone_gets_the_distributors_lists(
    model: mlflow.pyfunc.PyFuncModel, logged
) -> None:
    served = model.predict(pd.DataFrame({"distributor_id": ["D1", "D2"]}), params={"k": 2})
    recommender = load(logged[1])
    expected = [*recommender.for_distributor("D1", 2), *recommender.for_distributor("D2", 2)]
    assert list(served["product_id"]) == [pick.product_id for pick in expected]
    assert list(served["request"]) == [0, 0, 1, 1]
    assert served["consumer_id"].isna().all()


def test_a_frame_with_neither_id_column_is_refused(model: mlflow.pyfunc.PyFuncModel) -> None:
    with pytest.raises(Exception, match="consumer_id"):
        model.predict(pd.DataFrame({"customer": ["C1"]}))


def test_the_model_has_an_input_example_from_its_own_ids(logged) -> None:
    info = mlflow.models.get_model_info(logged[0])
    assert info.saved_input_example_info is not None
    example = mlflow.pyfunc.load_model(logged[0]).input_example
    assert example["consumer_id"].tolist()[0] == "C1" and pd.isna(example["consumer_id"].tolist()[1])
    assert pd.isna(example["distributor_id"].tolist()[0]) and example["distributor_id"].tolist()[1] == "D1"


def test_loading_the_model_warns_about_nothing(logged) -> None:
    """No "add type hints to predict" warning (MLflow prints it in colour on every load)."""
    script = textwrap.dedent(f"""
        import warnings
        warnings.simplefilter("always")
        import mlflow
        with warnings.catch_warnings(record=True) as caught:
            mlflow.pyfunc.load_model({logged[0]!r})
        print([str(w.message) for w in caught if "type hint" in str(w.message).lower()])
        """)
    uri = f"sqlite:///{logged[2] / 'mlflow.db'}"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "MLFLOW_TRACKING_URI": uri},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "type hints" not in done.stderr
