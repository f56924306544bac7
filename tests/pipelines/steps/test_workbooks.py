"""The workbooks step over a small simulated run: marketing.xlsx, quality.xlsx and the share kit,
opened with openpyxl in both locales — sheets, typed cells, frozen header, filters, a complete
data dictionary, the consumers sheet cut with a note, and the same bytes on a rerun."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from features.catalog import ShareKitCol, StepFile, Unit, WorkbookSheet, export_file
from features.columns import Col
from features.messages import Messages
from features.vocabulary import ReasonCode, RecCol
from models.clusters import ClusterConfig
from models.clv import CLVConfig
from models.segmentation import SegmentationConfig
from pipelines.config import NightlyConfig
from pipelines.steps.quality import run_quality
from pipelines.steps.segment import run_segmentation
from pipelines.steps.validate import load_and_validate
from pipelines.steps.workbooks import MARKETING_SHEETS, QUALITY_SHEETS, run_workbooks
from reporting.workbook import WorkbookConfig
from sources.simulator import SimulationConfig, simulate

SEGMENTATION = SegmentationConfig(
    clv=CLVConfig(enabled=False),
    clusters=ClusterConfig(k_min=2, k_max=3, fit_sample=1_000, silhouette_sample=300, n_init=1),
)
CSV_FILES = [file for _, file in MARKETING_SHEETS + QUALITY_SHEETS]
WORKBOOKS = (StepFile.MARKETING_WORKBOOK, StepFile.QUALITY_WORKBOOK, StepFile.SHARE_KIT_WORKBOOK)


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("workbooks") / "data"
    simulate(data, SimulationConfig(consumers=300, distributors=8, products=40, days=90, seed=11))
    return load_and_validate(data, None, NightlyConfig(), data.parent / "validated")


def _lists(outputs: Path) -> dict[str, Path]:
    """Hand-made published lists: 2 products per distributor, every consumer's list = 2 products."""
    homes = pd.read_parquet(outputs / StepFile.CONSUMER_TIERS_TWIN)
    distributors = sorted(homes["home_distributor_id"].dropna().unique())
    products = pd.read_parquet(outputs / StepFile.QUALITY_ALERTS_TWIN)[Col.PRODUCT_ID].tolist()[:2]
    distributor_lists = pd.DataFrame(
        {
            Col.DISTRIBUTOR_ID: [d for d in distributors for _ in products],
            Col.PRODUCT_ID: products * len(distributors),
            RecCol.RANK: [1, 2] * len(distributors),
            RecCol.SCORE: [0.9, 0.5] * len(distributors),
            RecCol.REASON: ["理由一", "理由二"] * len(distributors),
            RecCol.REASON_CODE: [ReasonCode.LIKELY_BUYERS, ReasonCode.PLATFORM_POPULAR] * len(distributors),
        }
    )
    consumers = homes[Col.CONSUMER_ID].tolist()
    consumer_lists = pd.DataFrame(
        {
            RecCol.CONSUMER_ID: [c for c in consumers for _ in range(2)],
            RecCol.PRODUCT_ID: [products[0], "P-other"] * len(consumers),
            RecCol.RANK: [1, 2] * len(consumers),
        }
    )
    distributor_lists.to_parquet(outputs / StepFile.DISTRIBUTOR_LISTS)
    consumer_lists.to_parquet(outputs / StepFile.CONSUMER_LISTS)
    return {StepFile.DISTRIBUTOR_LISTS: outputs / StepFile.DISTRIBUTOR_LISTS,
            StepFile.CONSUMER_LISTS: outputs / StepFile.CONSUMER_LISTS}  # fmt: skip


def _run(validated, outputs: Path, locale: str) -> dict[str, Path]:
    run_segmentation(validated.clean_paths, validated.as_of, SEGMENTATION, outputs, None, locale=locale)
    run_quality(validated.clean_paths, validated.as_of, NightlyConfig(locale=locale), outputs, None)
    sources = {file: outputs / file for file in CSV_FILES}
    return {**sources, **_lists(outputs)}


@pytest.fixture(scope="module", params=["en", "zh-CN"])
def run(request, validated, tmp_path_factory: pytest.TempPathFactory) -> dict:
    outputs = tmp_path_factory.mktemp(f"outputs-{request.param}")
    sources = _run(validated, outputs, request.param)
    published = run_workbooks(sources, outputs, WorkbookConfig(consumer_rows=100), request.param)
    return {"locale": request.param, "outputs": outputs, "sources": sources, "published": published}


def _rows(sheet) -> list[list[object]]:
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


def test_the_workbooks_and_the_share_kit_are_added_to_what_is_published(run: dict) -> None:
    added = set(run["published"]) - set(run["sources"])
    assert added == {
        StepFile.MARKETING_WORKBOOK,
        StepFile.QUALITY_WORKBOOK,
        StepFile.SHARE_KIT,
        StepFile.SHARE_KIT_WORKBOOK,
    }
    assert all(run["published"][name].parent == run["outputs"] for name in added)


def test_each_sheet_holds_its_csv_typed_under_a_frozen_filtered_header(run: dict) -> None:
    messages = Messages.load(run["locale"])
    for workbook, sheets in (
        (StepFile.MARKETING_WORKBOOK, MARKETING_SHEETS),
        (StepFile.QUALITY_WORKBOOK, QUALITY_SHEETS),
    ):
        book = openpyxl.load_workbook(run["outputs"] / workbook)
        titles = [messages.text(f"workbook.{code}") for code, _ in sheets]
        assert book.sheetnames == [*titles, messages.text(f"workbook.{WorkbookSheet.DICTIONARY}")]
        for title, (code, file) in zip(titles, sheets, strict=True):
            csv = pd.read_csv(run["outputs"] / file, encoding="utf-8-sig", dtype=str, keep_default_na=False)
            sheet = book[title]
            rows = _rows(sheet)
            assert rows[0] == csv.columns.tolist()
            expected = min(len(csv), 100) if code == WorkbookSheet.CONSUMERS else len(csv)
            assert len(rows) - 1 == expected
            assert sheet.freeze_panes == "A2"
            assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, len(rows[0])).column_letter}{len(rows)}"
            if expected:  # the first row's cells are the CSV's, numbers as numbers
                for cell, text in zip(sheet[2], csv.iloc[0].tolist(), strict=True):
                    if cell.data_type == "n" and cell.value is not None:
                        assert cell.value == pytest.approx(float(text))
                    elif cell.value is not None and cell.data_type == "s":
                        assert cell.value == text


def test_money_shares_and_dates_carry_their_number_formats(run: dict) -> None:
    messages = Messages.load(run["locale"])
    book = openpyxl.load_workbook(run["outputs"] / StepFile.MARKETING_WORKBOOK)
    sheet = book[messages.text(f"workbook.{WorkbookSheet.DISTRIBUTORS}")]
    formats = {cell.value: below.number_format for cell, below in zip(sheet[1], sheet[2], strict=True)}
    assert formats[messages.header("gmv_month")] == '"¥"#,##0.00'
    assert formats[messages.header("gmv_share")] == "0.0%"
    assert formats[messages.header("month")] == "yyyy-mm"  # as the CSV writes it, `YYYY-MM`
    month = next(i for i, cell in enumerate(sheet[1]) if cell.value == messages.header("month"))
    assert sheet[2][month].is_date
    assert formats[messages.header("orders_month")] == "#,##0"
    assert sheet.cell(2, 1).data_type == "s"  # an id is text


def test_the_dictionary_describes_every_column_of_every_sheet(run: dict) -> None:
    messages = Messages.load(run["locale"])
    for workbook in WORKBOOKS:
        book = openpyxl.load_workbook(run["outputs"] / workbook)
        dictionary = _rows(book[messages.text(f"workbook.{WorkbookSheet.DICTIONARY}")])
        described = {(row[0], row[1]): row for row in dictionary[1:]}
        for sheet in book.worksheets[:-1]:
            assert (sheet.title, messages.text("workbook.dictionary.whole_sheet")) in described
            for header in _rows(sheet)[0]:
                row = described[(sheet.title, header)]
                assert row[2] and row[3] and row[4], row  # meaning, unit, source


def test_the_consumers_sheet_is_cut_with_a_note(run: dict) -> None:
    messages = Messages.load(run["locale"])
    book = openpyxl.load_workbook(run["outputs"] / StepFile.MARKETING_WORKBOOK)
    dictionary = _rows(book[messages.text(f"workbook.{WorkbookSheet.DICTIONARY}")])
    note = dictionary[1][2]
    assert dictionary[1][0] == messages.text(f"workbook.{WorkbookSheet.CONSUMERS}")
    assert "100" in note and "300" in note and StepFile.CONSUMER_TIERS in note


def test_the_share_kit_has_a_sentence_per_list_row(run: dict) -> None:
    messages = Messages.load(run["locale"])
    kit = pd.read_csv(run["outputs"] / StepFile.SHARE_KIT, encoding="utf-8-sig", dtype=str)
    assert kit.columns.tolist() == [messages.header(c) for c in (
        ShareKitCol.DISTRIBUTOR_ID, ShareKitCol.RANK, ShareKitCol.PRODUCT_ID, ShareKitCol.CATEGORY,
        ShareKitCol.LIKELY_BUYERS, ShareKitCol.REASON, ShareKitCol.SHARE_TEXT,
    )]  # fmt: skip
    lists = pd.read_parquet(run["outputs"] / StepFile.DISTRIBUTOR_LISTS)
    assert len(kit) == len(lists)
    homes = pd.read_parquet(run["outputs"] / StepFile.CONSUMER_TIERS_TWIN)
    first = kit.iloc[0]
    community = int((homes["home_distributor_id"] == first.iloc[0]).sum())
    assert int(first.iloc[4]) == community  # every member's list holds the first product
    assert first.iloc[6] == messages.text(
        "share_kit.sentence",
        category=first.iloc[3],
        product=first.iloc[2],
        pitch=messages.text("share_kit.pitch.likely_buyers"),
        n=community,
    )
    book = openpyxl.load_workbook(run["outputs"] / StepFile.SHARE_KIT_WORKBOOK)
    assert _rows(book.worksheets[0])[1][6] == first.iloc[6]


def test_zh_sheet_names_and_headers_have_no_english(run: dict) -> None:
    if run["locale"] != "zh-CN":
        pytest.skip("English is the en locale's language")
    for workbook in WORKBOOKS:
        book = openpyxl.load_workbook(run["outputs"] / workbook)
        for sheet in book.worksheets:
            texts = [sheet.title, *(str(cell.value) for cell in sheet[1])]
            assert not [text for text in texts if re.search("[A-Za-z]", text)], workbook


# file names and docs paths a dictionary cites ("来自 rfm_segments.csv，规则详见 docs/segmentation.md")
FILE_NAMES = re.compile(r"[\w./-]+\.(?:csv|md|xlsx|parquet|json|yaml)")


def _data_codes(outputs: Path) -> set[str]:
    """Every id and data code of the run (consumer, distributor, product, supplier ids, categories):
    the values of the twins' and lists' columns whose catalog unit is untranslated."""
    codes: set[str] = set()
    for file, twin in ((StepFile.CONSUMER_TIERS, StepFile.CONSUMER_TIERS_TWIN),
                       (StepFile.QUALITY_ALERTS, StepFile.QUALITY_ALERTS_TWIN)):  # fmt: skip
        frame = pd.read_parquet(outputs / twin)
        for column in frame.columns:
            if export_file(file).doc(column).unit in Unit.UNTRANSLATED:
                codes |= set(frame[column].dropna().astype(str))
    lists = pd.read_parquet(outputs / StepFile.DISTRIBUTOR_LISTS)
    return codes | set(lists[Col.DISTRIBUTOR_ID]) | set(lists[Col.PRODUCT_ID])


def test_zh_workbooks_have_no_english_in_any_cell(run: dict) -> None:
    """Every cell of every sheet, the data dictionary included: ASCII letters only in ids and
    data codes (categories come from the platform's own data) and in cited file names."""
    if run["locale"] != "zh-CN":
        pytest.skip("English is the en locale's language")
    codes = sorted(_data_codes(run["outputs"]), key=len, reverse=True)
    code_pattern = re.compile("|".join(re.escape(code) for code in codes))
    english: list[str] = []
    for workbook in WORKBOOKS:
        book = openpyxl.load_workbook(run["outputs"] / workbook, read_only=True)
        for sheet in book.worksheets:
            for row in sheet.iter_rows(values_only=True):
                for value in row:
                    if isinstance(value, str):
                        rest = code_pattern.sub("", FILE_NAMES.sub("", value))
                        if re.search("[A-Za-z]", rest):
                            english.append(f"{workbook}/{sheet.title}: {value!r}")
    assert not english, sorted(set(english))


def test_a_rerun_writes_the_same_bytes(run: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    names = (
        StepFile.MARKETING_WORKBOOK,
        StepFile.QUALITY_WORKBOOK,
        StepFile.SHARE_KIT_WORKBOOK,
        StepFile.SHARE_KIT,
    )
    before = {name: (run["outputs"] / name).read_bytes() for name in names}
    later = time.time() + 86_400
    monkeypatch.setattr(time, "time", lambda: later)
    run_workbooks(run["sources"], run["outputs"], WorkbookConfig(consumer_rows=100), run["locale"])
    assert {name: (run["outputs"] / name).read_bytes() for name in names} == before


def test_the_share_kit_follows_the_lists_that_are_published(run: dict, tmp_path: Path) -> None:
    """When the new model loses the gate the champion's lists are published: the kit is theirs."""
    ours = pd.read_parquet(run["outputs"] / StepFile.DISTRIBUTOR_LISTS)
    champions = tmp_path / StepFile.DISTRIBUTOR_LISTS
    ours.iloc[[1]].assign(**{RecCol.RANK: 1}).to_parquet(champions)
    sources = {**run["sources"], StepFile.DISTRIBUTOR_LISTS: champions}
    published = run_workbooks(sources, tmp_path / "outputs", WorkbookConfig(consumer_rows=100), run["locale"])
    kit = pd.read_csv(published[StepFile.SHARE_KIT], encoding="utf-8-sig", dtype=str)
    assert kit.iloc[:, 2].tolist() == [ours.iloc[1][Col.PRODUCT_ID]]
    assert published[StepFile.DISTRIBUTOR_LISTS] == champions


def test_likely_buyers_count_community_members_whose_list_holds_the_product(tmp_path: Path) -> None:
    """The step counts the consumer lists file with DuckDB, only the pushed products."""
    from pipelines.steps.workbooks import _likely_buyers
    from reporting.share_kit import home_of

    homes = pd.DataFrame(
        {Col.CONSUMER_ID: ["C1", "C2", "C3", "C3", "C5"], Col.DISTRIBUTOR_ID: ["D1", "D1", "D2", "D9", "D2"]}
    )  # C3 twice: its first home counts; C4 has no home
    lists = pd.DataFrame(
        {
            RecCol.CONSUMER_ID: ["C1", "C1", "C2", "C3", "C3", "C4", "C5", "C5"],
            RecCol.PRODUCT_ID: ["P1", "P2", "P1", "P1", "P3", "P1", "P2", "P9"],
        }
    )
    path = tmp_path / StepFile.CONSUMER_LISTS
    lists.to_parquet(path)
    counted = _likely_buyers(path, home_of(homes), ["P1", "P2", "P3"])
    keys = [Col.DISTRIBUTOR_ID, Col.PRODUCT_ID]
    counted = counted.sort_values(keys).reset_index(drop=True)
    assert counted.values.tolist() == [
        ["D1", "P1", 2],
        ["D1", "P2", 1],
        ["D2", "P1", 1],
        ["D2", "P2", 1],
        ["D2", "P3", 1],
    ]


def test_the_segment_workbooks_from_a_child_process_are_the_same_bytes(
    run: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The nightly writes marketing.xlsx and quality.xlsx in a child process while the recommenders
    train: the same bytes as run_workbooks writes, and the child's log lines arrive here."""
    from pipelines.steps.workbooks import ChildProcess, segment_workbooks

    for file in CSV_FILES:
        (tmp_path / file).write_bytes((run["outputs"] / file).read_bytes())
    with caplog.at_level(logging.INFO), ChildProcess() as started:  # started ahead, as the nightly does
        books = segment_workbooks(tmp_path, WorkbookConfig(consumer_rows=100), run["locale"], started)
        assert not started.waiting
    names = (StepFile.MARKETING_WORKBOOK, StepFile.QUALITY_WORKBOOK)
    assert books == {name: tmp_path / name for name in names}
    for name in names:
        assert books[name].read_bytes() == (run["outputs"] / name).read_bytes(), name
    child_lines = [r.getMessage() for r in caplog.records if r.name == "reporting.workbook"]
    assert any(str(tmp_path / StepFile.MARKETING_WORKBOOK) in line for line in child_lines)
    assert any(r.name == "siyu.progress" and "writing sheet" in r.getMessage() for r in caplog.records)


def test_run_workbooks_handed_the_books_writes_only_the_share_kit(run: dict, tmp_path: Path) -> None:
    books = {StepFile.MARKETING_WORKBOOK: tmp_path / "elsewhere.xlsx"}
    published = run_workbooks(
        run["sources"], tmp_path, WorkbookConfig(consumer_rows=100), run["locale"], books
    )
    assert published[StepFile.MARKETING_WORKBOOK] == books[StepFile.MARKETING_WORKBOOK]
    assert StepFile.QUALITY_WORKBOOK not in published
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [StepFile.SHARE_KIT, StepFile.SHARE_KIT_WORKBOOK]
    )
    for name in (StepFile.SHARE_KIT, StepFile.SHARE_KIT_WORKBOOK):
        assert published[name].read_bytes() == (run["outputs"] / name).read_bytes(), name


def test_an_error_in_the_child_process_is_raised_here(tmp_path: Path) -> None:
    from features.errors import SiyuError
    from pipelines.steps.workbooks import in_child_process, write_books

    missing = {StepFile.CONSUMER_TIERS: tmp_path / StepFile.CONSUMER_TIERS}
    with pytest.raises(SiyuError, match="cannot be read for the workbook"):
        in_child_process(write_books, missing, tmp_path, WorkbookConfig(), "en")


def test_the_child_process_runs_as_nice_as_asked() -> None:
    """The side workbooks take the CPU the recommenders leave: the child is nicer than its parent."""
    import os

    from pipelines.steps.workbooks import BESIDE_NICENESS, in_child_process

    own = os.nice(0)
    assert in_child_process(os.nice, 0) == own
    assert in_child_process(os.nice, 0, niceness=BESIDE_NICENESS) == min(own + BESIDE_NICENESS, 19)


def test_a_script_without_a_main_guard_can_start_the_child_process(tmp_path: Path) -> None:
    """The child is a fresh interpreter that never runs the caller's ``__main__`` again (a
    spawned multiprocessing child would, and fail: "start a new process before the current
    process has finished its bootstrapping phase")."""
    import subprocess
    import sys

    script = tmp_path / "night.py"
    script.write_text(
        "import os\n"
        "from pipelines.steps.workbooks import in_child_process\n"
        "print('child', in_child_process(os.getpid) != os.getpid())\n"
    )
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, str(script)], cwd=root, env={"PYTHONPATH": str(root)}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["child True"]


def test_a_child_process_started_ahead_takes_one_call_and_ends() -> None:
    import os

    from pipelines.steps.workbooks import ChildProcess

    with ChildProcess() as child:
        assert child.waiting
        time.sleep(0.2)  # still waiting: nothing runs before its call
        assert child.waiting
        assert child.call(os.getpid) not in (None, os.getpid())
        assert not child.waiting
        with pytest.raises(RuntimeError, match="cannot take a call"):
            child.call(os.getpid)
    assert child._process.returncode == 0


def test_a_child_process_never_called_stops_when_closed() -> None:
    from pipelines.steps.workbooks import ChildProcess

    child = ChildProcess()
    child.close()
    child.close()  # a second close does nothing
    assert child._process.returncode == 0  # it saw its call's pipe end, and exited by itself
    assert not child.waiting


def test_a_used_child_is_replaced_by_a_fresh_one(run: dict, tmp_path: Path) -> None:
    """A retried workbooks task gets the child its first try used: it starts a new one."""
    import os

    from pipelines.steps.workbooks import ChildProcess, segment_workbooks

    for file in CSV_FILES:
        (tmp_path / file).write_bytes((run["outputs"] / file).read_bytes())
    with ChildProcess() as used:
        used.call(os.getpid)
        books = segment_workbooks(tmp_path, WorkbookConfig(consumer_rows=100), run["locale"], used)
    assert (
        books[StepFile.MARKETING_WORKBOOK].read_bytes()
        == (run["outputs"] / StepFile.MARKETING_WORKBOOK).read_bytes()
    )


def test_closing_a_child_at_work_kills_it_and_its_call_raises() -> None:
    """A night that fails while the child writes ends the child; the call waiting on it raises."""
    import threading

    from pipelines.steps.workbooks import ChildProcess

    child = ChildProcess()
    raised: list[BaseException] = []

    def calling() -> None:
        try:
            child.call(time.sleep, 60)
        except BaseException as error:  # what the workbooks task would see
            raised.append(error)

    caller = threading.Thread(target=calling)
    started = time.monotonic()
    caller.start()
    time.sleep(1.0)  # the child is at work
    child.close()
    caller.join(timeout=30)
    assert not caller.is_alive()
    assert time.monotonic() - started < 30  # killed, not waited out
    assert child._process.returncode is not None and child._process.returncode < 0
    assert len(raised) == 1 and isinstance(raised[0], RuntimeError)
    assert "without a result" in str(raised[0])
