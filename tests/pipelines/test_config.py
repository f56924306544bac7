"""Config errors: every bad key names the key, the bad value, what is allowed and a concrete fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from features.config_errors import describe_errors
from pipelines.config import ConfigError, NightlyConfig, load_config
from tests.cli import run_cli


def _error(tmp_path: Path, text: str) -> str:
    """The message ``load_config`` raises for a config file holding ``text``."""
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert (
        raised.value.__context__ is None or raised.value.__suppress_context__
    ) and "Traceback" not in message
    return message


def _block(message: str, key: str) -> list[str]:
    """The three lines (problem, allowed, fix) of ``key``'s block."""
    lines = message.splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.endswith(".yaml: " + key) or f".yaml: {key}: " in line
    )
    block = lines[start : start + 3]
    assert block[1].startswith("  allowed: ") and block[2].startswith("  fix: "), message
    return block


def test_wrong_type_for_max_quarantine_share(tmp_path: Path) -> None:
    problem, allowed, fix = _block(
        _error(tmp_path, "validation:\n  max_quarantine_share: lots\n"), "validation.max_quarantine_share"
    )
    assert problem.startswith(str(tmp_path / "bad.yaml")) and "(got 'lots')" in problem
    assert allowed == "  allowed: a number from 0 to 1"
    assert fix == "  fix: set validation.max_quarantine_share to a number from 0 to 1, e.g. 0.05"


def test_rfm_map_with_missing_and_overlapping_cells_names_them_under_the_section_key(tmp_path: Path) -> None:
    message = _error(
        tmp_path,
        "segmentation:\n  rfm:\n    segments:\n"
        "      - {name: Low, r: [1, 3]}\n      - {name: High, r: [3, 5], f: [1, 2]}\n",
    )
    problem, allowed, fix = _block(message, "segmentation.rfm")
    assert "segments must cover every (R, F, M) cell exactly once" in problem
    assert "overlap (R,F,M): 311 in segments[0] 'Low' and segments[1] 'High'" in problem
    assert "30 cell(s) missing (R,F,M): 431" in problem
    assert "must cover each of 125 cells exactly once" in allowed
    assert "change segmentation.rfm" in fix and "remove segmentation.rfm to use the default" in fix


@pytest.mark.parametrize(
    ("text", "key", "bad", "fix"),
    [
        (
            "validation:\n  chunk_rows: 0\n",
            "validation.chunk_rows",
            "(got 0)",
            "set validation.chunk_rows to a whole number ≥ 1, e.g. 500000",
        ),
        (
            "publish:\n  keep_last: 0\n",
            "publish.keep_last",
            "(got 0)",
            "set publish.keep_last to a whole number ≥ 1, e.g. 30, or leave it empty",
        ),
        (
            "lists:\n  sale_window_days: -1\n",
            "lists.sale_window_days",
            "(got -1)",
            "set lists.sale_window_days to a whole number ≥ 1, e.g. 7",
        ),
    ],
    ids=["chunk_rows", "keep_last", "sale_window_days"],
)
def test_number_below_its_minimum(tmp_path: Path, text: str, key: str, bad: str, fix: str) -> None:
    problem, allowed, fix_line = _block(_error(tmp_path, text), key)
    assert bad in problem and "greater than or equal to 1" in problem
    assert "a whole number ≥ 1" in allowed
    assert fix_line == f"  fix: {fix}"


def test_a_field_description_reaches_the_allowed_line(tmp_path: Path) -> None:
    _, allowed, _ = _block(_error(tmp_path, "lists:\n  sale_window_days: -1\n"), "lists.sale_window_days")
    assert allowed.endswith("Only products on sale in the days after the as-of date (sale_start/sale_end).")


def test_unknown_key_suggests_the_closest_known_key(tmp_path: Path) -> None:
    message = _error(tmp_path, "validation:\n  max_quarantin_share: 0.1\n")
    problem, allowed, fix = _block(message, "validation.max_quarantin_share")
    assert "unknown key — did you mean validation.max_quarantine_share?" in problem and "(got 0.1)" in problem
    assert "max_quarantine_share, max_quarantine_share_by_table, chunk_rows" in allowed
    assert "rename validation.max_quarantin_share to validation.max_quarantine_share" in fix


def test_a_column_mapping_for_an_unknown_table_names_the_config_key(tmp_path: Path) -> None:
    message = _error(tmp_path, "data:\n  columns:\n    ordres: {buyer: consumer_id}\n")
    problem, allowed, fix = _block(message, "data.columns.ordres")
    assert "the key 'ordres' should be 'orders'" in problem
    assert "orders, products, consumers" in allowed and "rename the key data.columns.ordres" in fix


def test_unknown_key_that_belongs_to_another_section(tmp_path: Path) -> None:
    _, _, fix = _block(_error(tmp_path, "validation:\n  keep_last: 3\n"), "validation.keep_last")
    assert "rename validation.keep_last to publish.keep_last" in fix


def test_unknown_key_without_a_close_match_is_to_be_removed(tmp_path: Path) -> None:
    problem, _, fix = _block(_error(tmp_path, "publish:\n  zzz: 1\n"), "publish.zzz")
    assert "did you mean" not in problem
    assert fix.startswith("  fix: remove publish.zzz")


def test_literal_field_lists_its_values(tmp_path: Path) -> None:
    problem, allowed, fix = _block(
        _error(tmp_path, "segmentation:\n  clv:\n    fit_method: gibbs\n"), "segmentation.clv.fit_method"
    )
    assert "(got 'gibbs')" in problem
    assert allowed.startswith("  allowed: one of: map, mcmc, advi")
    assert fix == "  fix: set segmentation.clv.fit_method to one of: map, mcmc, advi, e.g. map"


def test_nested_dict_field(tmp_path: Path) -> None:
    message = _error(tmp_path, "validation:\n  max_quarantine_share_by_table: {orders: x}\n")
    problem, allowed, fix = _block(message, "validation.max_quarantine_share_by_table.orders")
    assert "(got 'x')" in problem
    assert allowed == "  allowed: a number"
    assert fix == "  fix: set validation.max_quarantine_share_by_table.orders to a number, e.g. 0.5"

    message = _error(tmp_path, "validation:\n  max_quarantine_share_by_table: [orders]\n")
    problem, allowed, fix = _block(message, "validation.max_quarantine_share_by_table")
    assert "should be a mapping" in problem and "(got [orders])" in problem
    assert allowed == "  allowed: a mapping {name: a number}"
    assert "e.g. {name: 0.5}" in fix


def test_bool_field_given_maybe(tmp_path: Path) -> None:
    problem, allowed, fix = _block(
        _error(tmp_path, "lists:\n  exclude_purchased: maybe\n"), "lists.exclude_purchased"
    )
    assert "(got 'maybe')" in problem
    assert allowed.startswith("  allowed: true or false")
    assert fix == "  fix: set lists.exclude_purchased to true or false, e.g. false"


def test_path_field_given_a_list(tmp_path: Path) -> None:
    problem, allowed, fix = _block(_error(tmp_path, "work_dir: [a, b]\n"), "work_dir")
    assert "should be a path" in problem and "(got [a, b])" in problem
    assert "a file or folder path" in allowed
    assert fix == "  fix: set work_dir to a file or folder path (text), e.g. work"


def test_section_given_a_scalar(tmp_path: Path) -> None:
    problem, allowed, fix = _block(_error(tmp_path, "validation: 5\n"), "validation")
    assert "should be a mapping" in problem and "(got 5)" in problem
    assert "max_quarantine_share, max_quarantine_share_by_table, chunk_rows" in allowed
    assert "e.g. {max_quarantine_share: 0.05}" in fix


def test_item_of_a_list_is_named_with_its_index_and_the_echo_error_is_dropped(tmp_path: Path) -> None:
    message = _error(tmp_path, "segmentation:\n  rfm:\n    segments:\n      - {name: A, r: [0, 9]}\n")
    problem, _, fix = _block(message, "segmentation.rfm.segments[0].r")
    assert "1 <= low <= high <= 5, got [0, 9]" in problem
    assert "e.g. [1, 5]" in fix
    assert "after validation" not in message and "problems in the config" not in message


def test_missing_required_key(tmp_path: Path) -> None:
    message = _error(tmp_path, "segmentation:\n  member_tiers:\n    levels:\n      - {min_spend: 0}\n")
    problem, allowed, fix = _block(message, "segmentation.member_tiers.levels[0].name")
    assert problem.endswith("required, but not given")
    assert allowed == "  allowed: text of at least 1 character"
    assert fix.startswith("  fix: add segmentation.member_tiers.levels[0].name")


def test_several_problems_give_a_count_and_one_block_each(tmp_path: Path) -> None:
    message = _error(tmp_path, "validation:\n  chunk_rows: 0\npublish:\n  keep_last: 0\n")
    assert message.splitlines()[0].endswith("2 problems in the config")
    _block(message, "validation.chunk_rows")
    _block(message, "publish.keep_last")


def test_a_new_field_anywhere_gets_the_same_message_for_free(tmp_path: Path) -> None:
    class Section(BaseModel):
        model_config = ConfigDict(extra="forbid")

        retries: int = Field(3, ge=2, le=9, description="Attempts before giving up.")
        mode: str = "fast"

        @model_validator(mode="after")
        def _known_mode(self) -> Section:
            if self.mode not in ("fast", "slow"):
                raise ValueError(f"mode {self.mode!r} is neither fast nor slow")
            return self

    class Root(BaseModel):
        model_config = ConfigDict(extra="forbid")

        section: Section = Field(default_factory=Section)

    with pytest.raises(ValidationError) as raised:
        Root.model_validate({"section": {"retries": 1}})
    message = describe_errors(Path("x.yaml"), raised.value, Root, Path("ref.yaml"))
    assert message.splitlines() == [
        "x.yaml: section.retries: should be greater than or equal to 2 (got 1)",
        "  allowed: a whole number from 2 to 9 — Attempts before giving up.",
        "  fix: set section.retries to a whole number from 2 to 9, e.g. 3",
    ]
    with pytest.raises(ValidationError) as raised:
        Root.model_validate({"section": {"mode": "warp"}})
    message = describe_errors(Path("x.yaml"), raised.value, Root, Path("ref.yaml"))
    assert (
        message.splitlines()[0] == "x.yaml: section: mode 'warp' is neither fast nor slow (got {mode: warp})"
    )
    assert "remove section to use the default" in message.splitlines()[2]


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    message = _error(tmp_path, "validation:\n  chunk_rows: 5\n   bad: 1\n")
    assert "bad.yaml: line 3, column 7: not valid YAML: mapping values are not allowed here" in message
    assert "   bad: 1" in message and "fix: correct the syntax at line 3, column 7" in message


def test_unclosed_bracket_points_at_where_it_opened(tmp_path: Path) -> None:
    message = _error(tmp_path, "validation:\n  chunk_rows: [1\n")
    assert "line 2, column 15: not valid YAML" in message


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    message = _error(tmp_path, "publish:\n  keep_last: 5\n  keep_last: 7\n")
    assert "line 3, column 3" in message and "key 'keep_last' is given twice (first at line 2)" in message
    assert "fix: keep one of the two 'keep_last:' lines (line 2 or line 3)" in message


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"publish:\n  exports_dir: caf\xe9\n")
    with pytest.raises(
        ConfigError, match=r"bad.yaml: line 2: not UTF-8 text .*\n  fix: save the file as UTF-8"
    ):
        load_config(path)


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing set\n")
    assert load_config(path) == NightlyConfig()


def test_top_level_list_is_refused(tmp_path: Path) -> None:
    message = _error(tmp_path, "- validation\n- publish\n")
    assert "the top level must be a mapping of sections" in message and "got a list" in message
    assert "\n  fix: " in message


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "none.yaml")
    with pytest.raises(ConfigError, match="is a folder, not a config file"):
        load_config(tmp_path)


def test_shipped_config_loads(tmp_path: Path) -> None:
    assert (
        load_config(Path(__file__).parents[2] / "configs" / "nightly.yaml").validation.chunk_rows == 500_000
    )


def test_cli_prints_the_block_and_exits_2(tiny_dataset: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("validation:\n  chunk_rows: 0\n")
    status = run_cli(
        monkeypatch,
        "validate",
        "--data",
        str(tiny_dataset),
        "--out",
        str(tmp_path / "v"),
        "--config",
        str(bad),
    )
    err = capsys.readouterr().err
    assert status == 2
    assert f"error: {bad}: validation.chunk_rows: should be greater than or equal to 1 (got 0)" in err
    assert "fix: set validation.chunk_rows to a whole number ≥ 1, e.g. 500000" in err
    assert "Traceback" not in err


def test_union_members_and_non_text_keys(tmp_path: Path) -> None:
    class Inner(BaseModel):
        model_config = ConfigDict(extra="forbid")

        size: int = 1

    class Root(BaseModel):
        model_config = ConfigDict(extra="forbid")

        limit: int | list[int] = 3
        source: Inner | str = "s"

    def describe(data: dict) -> list[str]:
        with pytest.raises(ValidationError) as raised:
            Root.model_validate(data)
        return describe_errors(Path("x.yaml"), raised.value, Root, Path("ref.yaml")).splitlines()

    assert (
        describe({"limit": ["q"]})[0]
        == "x.yaml: limit[0]: should be a valid integer, unable to parse string as an integer (got 'q')"
    )
    assert describe({"source": {"sise": 2}}) == [
        "x.yaml: source.sise: unknown key — did you mean source.size? (got 2)",
        "  allowed: the keys of source: size",
        "  fix: rename source.sise to source.size (see ref.yaml)",
    ]
    assert describe({"source": 5})[1] == "  allowed: a mapping with keys: size or text"
    assert describe({1: 2})[0] == "x.yaml: 1: a key must be text (got 1)"


def test_without_a_config_file_here_the_shipped_one_is_read(tmp_path: Path, monkeypatch) -> None:
    from pipelines.config import SHIPPED_CONFIG

    monkeypatch.chdir(tmp_path)  # a folder without configs/nightly.yaml, as cron's may be
    assert load_config(None) == load_config(SHIPPED_CONFIG)
    assert load_config(None).demo.defective_share == 0.06  # the shipped value, not the default 0.02
