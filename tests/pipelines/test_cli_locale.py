"""``--locale`` on the commands: it replaces the config's ``locale``; an unknown one is refused."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.catalog import StepFile
from sources.simulator import SimulationConfig, simulate
from tests.cli import run_cli


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("cli_locale") / "data"
    simulate(data, SimulationConfig(consumers=300, distributors=6, products=60, days=60, seed=3))
    return data


def test_quality_with_locale_zh_cn_writes_chinese_headers(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (
        run_cli(monkeypatch, "quality", "--data", str(data_dir), "--out", str(tmp_path), "--locale", "zh-CN")
        == 0
    )
    alerts = pd.read_csv(tmp_path / StepFile.QUALITY_ALERTS, encoding="utf-8-sig")
    assert alerts.columns[0] == "商品编号" and set(alerts["质量等级"]) <= {"正常", "观察", "预警", "下架"}
    assert pd.read_parquet(tmp_path / StepFile.QUALITY_ALERTS_TWIN).columns[0] == "product_id"


def test_locale_from_the_config_file(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "zh.yaml"
    config.write_text("locale: zh-CN\n", encoding="utf-8")
    out = tmp_path / "out"
    assert (
        run_cli(monkeypatch, "quality", "--data", str(data_dir), "--out", str(out), "--config", str(config))
        == 0
    )
    assert pd.read_csv(out / StepFile.QUALITY_ALERTS, encoding="utf-8-sig").columns[0] == "商品编号"
    en = tmp_path / "en"
    args = ("quality", "--data", str(data_dir), "--out", str(en), "--config", str(config), "--locale", "en")
    assert run_cli(monkeypatch, *args) == 0
    assert pd.read_csv(en / StepFile.QUALITY_ALERTS, encoding="utf-8-sig").columns[0] == "product_id"


def test_an_unknown_locale_is_refused(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        run_cli(monkeypatch, "segment", "--data", str(data_dir), "--out", str(tmp_path), "--locale", "fr")
        == 2
    )
    assert "locale 'fr' is not supported\n  fix: use one of en, zh-CN" in capsys.readouterr().err
