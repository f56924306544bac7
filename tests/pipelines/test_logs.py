"""The CLI's log: library chatter off by default, back with --verbose; no ANSI codes in any line."""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator

import pytest

from pipelines.logs import CHATTY_LIBRARIES, configure_logging


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    logging.captureWarnings(False)  # an earlier CLI test may have left it on, with pytest's recorder saved
    # Prefect's API log handler (set up by an earlier test that imported the flow) warns outside a run.
    monkeypatch.setattr(logging.getLogger("prefect.task_runs"), "handlers", [])
    stream = io.StringIO()
    yield stream
    logging.captureWarnings(False)
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.NOTSET)
    logging.basicConfig(handlers=[logging.NullHandler()], force=True)


def _emit() -> None:
    logging.getLogger("pipelines.flow").info("segmenting consumers")
    logging.getLogger("arviz.preview").info("arviz_base not installed")
    logging.getLogger("pytensor.configdefaults").info("compiledir /root/.pytensor/compiledir_Linux")
    logging.getLogger("/venv/site-packages/pytensor/link/c/lazylinker_c.py").info("Compiling new CVM")
    logging.getLogger("matplotlib.font_manager").info("generated new fontManager")
    logging.getLogger("prefect.task_runs").info("segmentation: Finished in state Completed()")
    logging.getLogger("prefect.task_runs").error("publish: Finished in state Failed('disk full')")
    logging.getLogger("mlflow.store.db.utils").warning("\x1b[33mdatabase is old\x1b[0m")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn_explicit(
            "\x1b[33mAdd type hints\x1b[0m", UserWarning, "/venv/site-packages/mlflow/pyfunc/utils.py", 187
        )
        warnings.warn_explicit("a real problem", UserWarning, "/repo/models/clv.py", 10)


def test_by_default_only_what_the_run_does_reaches_the_log(log: io.StringIO) -> None:
    configure_logging(stream=log)
    _emit()
    lines = log.getvalue().splitlines()
    text = "\n".join(lines)
    assert "segmenting consumers" in text and "Failed('disk full')" in text
    assert "arviz" not in text and "compiledir" not in text and "fontManager" not in text
    assert "Compiling new CVM" not in text
    assert "Completed()" not in text and "type hints" not in text
    assert "WARNING mlflow.store.db.utils: database is old" in text  # warnings stay, without colour codes
    assert "a real problem" in text
    assert "\x1b" not in text


def test_verbose_brings_the_chatter_back(log: io.StringIO) -> None:
    configure_logging(verbose=True, stream=log)
    _emit()
    text = log.getvalue()
    back = ("arviz_base not installed", "compiledir", "Compiling new CVM", "Completed()", "Add type hints")
    for expected in back:
        assert expected in text
    assert "\x1b" not in text


def test_quiet_shows_warnings_and_errors_only(log: io.StringIO) -> None:
    configure_logging(quiet=True, stream=log)
    _emit()
    text = log.getvalue()
    assert "segmenting consumers" not in text and "Failed('disk full')" in text
