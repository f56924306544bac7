"""The segmentation step: features, RFM, member tiers, clusters, CLV, distributor tiers, tags, exports.

``run_segmentation`` reads the clean tables through the DuckDB engine, calls the pure
builders and models, and writes the marketing CSVs (``consumer_tiers.csv`` with its Parquet
twin ``consumer_tiers.parquet``, ``distributor_tiers.csv``) plus the smaller work files
named in ``features.catalog.StepFile``. It returns paths and counts, never the large frames.
Every column is documented in docs/segmentation.md.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Generic, TypeVar

import duckdb
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from features.asof import AsOf
from features.catalog import StepFile, export_file
from features.clv import model_frames
from features.columns import Col
from features.consumer_features import ConsumerCol, consumer_features
from features.distributor_features import distributor_features, distributor_monthly
from features.engine import connect, setting
from features.errors import SiyuError
from features.files import write_parquet_atomically
from features.interactions import history_fingerprint
from features.messages import DEFAULT_LOCALE, Messages
from features.progress import progress
from features.timing import Stopwatch
from features.vocabulary import DistributorFeatureCol, ExportCol, TagCol
from models.cadence import Cadence, KeptKey, redo_reason
from models.churn import Choice, FittedModels
from models.churn_choice import (
    CHOICE_FILE,
    MODELS_FILE,
    RECHOOSE,
    REFIT,
    read_choice,
    read_models,
    write_choice,
    write_models,
)
from models.churn_choice import config_hash as churn_config_hash
from models.cluster_choice import K_FILE, RECHOOSE_K, read_k, write_k
from models.cluster_choice import config_hash as cluster_config_hash
from models.clv import warm_up
from models.distributor_tiers import (
    assign_distributor_tiers,
    coaching_list,
    tier_counts,
)
from models.member_tiers import (
    MOVEMENTS,
    TierCol,
    tier_benefits,
)
from models.rfm import RFMCol
from models.segmentation import (
    ConsumerSummaries,
    PreviousTiersMismatch,
    SegmentationConfig,
    clv_columns,
    segment_consumers,
)
from models.tags import profile_tags
from reporting.excel import read_history, twin_path, write_excel_csv
from reporting.localize import localize_frame, tag_labels

logger = logging.getLogger(__name__)
T = TypeVar("T")

# sort keys of consumer_tiers' rows (dropped before writing)
_SEGMENT_RANK, _VALUE = "_segment_rank", "_expected_value"


@dataclass(frozen=True)
class SegmentationOutcome:
    """Where the segmentation step wrote its files, and the counts worth printing."""

    paths: dict[str, Path]
    consumers: int
    buyers: int
    segment_counts: dict[str, int]
    tier_counts: dict[str, int]
    movement_counts: dict[str, int]
    distributor_tier_counts: dict[str, int]
    coaching: int
    clusters: int | None
    clv_set_aside: int | None
    seconds: dict[str, float] = field(default_factory=dict)
    # churn / value models: validation-window metrics as MLflow names (models.churn.tracking_metrics)
    churn_metrics: dict[str, float] = field(default_factory=dict)
    churn_chosen: dict[str, str] = field(default_factory=dict)


def run_segmentation(
    clean_paths: dict[str, Path],
    as_of: AsOf | date,
    settings: SegmentationConfig,
    out_dir: Path,
    previous_dir: Path | None,
    con: duckdb.DuckDBPyConnection | None = None,
    locale: str = DEFAULT_LOCALE,
    kept_dir: Path | None = None,
) -> SegmentationOutcome:
    """Segment every consumer and distributor as of ``as_of``; write the exports under ``out_dir``.

    ``settings`` is the ``segmentation`` section of the nightly config. ``previous_dir`` is an
    earlier run's output directory; its consumer tiers (``read_previous_tiers``) give each
    consumer's previous tier and movement. ``con`` is the run's engine session (the nightly
    hands its own); None opens one over ``clean_paths``. ``locale`` (the config's ``locale``)
    is the language of the CSVs' headers and labels; the Parquet files keep English codes.
    ``kept_dir``: the folder that keeps the segmentation's choices between nights (the nightly's
    work directory): the churn / value models' choice and the chosen models as fitted
    (``models.churn_choice``, ``churn_choice.json`` and ``churn_models.npz``) and the clusters'
    k (``models.cluster_choice``, ``cluster_choice.json``); None: every choice is made and
    every model fitted tonight, and none is stored.
    """
    as_of = AsOf.of(as_of)
    messages = Messages.load(locale)
    previous = read_previous_tiers(previous_dir)
    con = con if con is not None else connect(clean_paths)
    # Every builder orders its result explicitly, so DuckDB need not keep scan order (faster, leaner).
    with setting(con, "preserve_insertion_order", False):
        return _segment(con, as_of, settings, out_dir, previous, previous_dir, messages, kept_dir)


def _segment(
    con: duckdb.DuckDBPyConnection,
    as_of: AsOf,
    settings: SegmentationConfig,
    out_dir: Path,
    previous: pd.DataFrame | None,
    previous_dir: Path | None,
    messages: Messages,
    kept_dir: Path | None,
) -> SegmentationOutcome:
    watch = Stopwatch("segmentation", logger)
    clv_warm_up = _warm_up_clv_meanwhile(settings)
    features = consumer_features(
        con, as_of, window_days=settings.member_tiers.window_days, recent_days=settings.recent_days
    )
    watch.lap("consumer features")
    frames = _clv_frames(con, as_of, settings)
    choices = _Choices.open(kept_dir, con, as_of, settings)
    if clv_warm_up is not None:
        clv_warm_up.join()
    watch.lap("clv frames")
    # the tags need the features only: written on a side thread while rfm, tiers and clusters
    # hold one core (threadpool_limits below), collected with the consumer exports
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="siyu-tags") as side:
        tags = side.submit(_write_tags, features, settings, out_dir, messages)
        consumers, summaries, clv, paths = _consumers(
            features, frames, choices, as_of, settings, out_dir, previous, previous_dir, messages, watch
        )
        paths[StepFile.PROFILE_TAGS] = tags.result()
    watch.lap("consumer exports and tags")
    distributors = _distributor_files(con, as_of, settings, out_dir, messages)
    paths.update(distributors.paths)
    watch.lap("distributor tiers")
    return SegmentationOutcome(
        paths=paths,
        consumers=len(consumers),
        buyers=int((features[ConsumerCol.ORDERS] > 0).sum()),
        segment_counts=_counts(consumers[RFMCol.SEGMENT]),
        tier_counts={
            name: int((consumers[TierCol.MEMBER_TIER] == name).sum()) for name in settings.member_tiers.names
        },
        movement_counts={m: int((consumers[TierCol.MOVEMENT] == m).sum()) for m in MOVEMENTS},
        distributor_tier_counts=distributors.tier_counts,
        coaching=distributors.coaching,
        clusters=summaries.clusters,
        clv_set_aside=None if clv is None else int(clv.attrs.get("set_aside", 0)),
        seconds=watch.seconds,
        churn_metrics={} if clv is None else _churn_metrics(clv.attrs.get("validation", [])),
        churn_chosen={} if clv is None else dict(clv.attrs.get("chosen", {})),
    )


def _consumers(
    features: pd.DataFrame,
    frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None,
    choices: _Choices,
    as_of: AsOf,
    settings: SegmentationConfig,
    out_dir: Path,
    previous: pd.DataFrame | None,
    previous_dir: Path | None,
    messages: Messages,
    watch: Stopwatch,
) -> tuple[pd.DataFrame, ConsumerSummaries, pd.DataFrame | None, dict[str, Path]]:
    """RFM, member tiers, clusters and CLV of every consumer, and the consumer export files."""
    try:
        # KMeans and its silhouette run on fixed-size samples (clusters.fit_sample, silhouette_sample):
        # on one thread they are as fast alone and 3x faster on a busy machine than OpenMP/BLAS
        # threads spinning against other work (sim100k under load: 32.5s -> 11.3s, same clusters).
        with threadpool_limits(limits=1):
            kept_k = None if choices.clusters is None else choices.clusters.carried
            consumers, summaries = segment_consumers(features, previous, settings, kept_k)
    except PreviousTiersMismatch as error:
        where = previous_dir / StepFile.CONSUMER_TIERS if previous_dir else "previous tiers"
        raise SiyuError(
            f"{where}: {error}\n  fix: pass --previous with an earlier run made with the same member tiers"
        ) from None
    choices.store_clusters(summaries)
    watch.lap("rfm, member tiers and clusters")
    clv = _clv(frames, choices.churn, choices.models, as_of, settings)
    if clv is not None:
        typed = clv.astype({Col.CONSUMER_ID: consumers[Col.CONSUMER_ID].dtype})
        consumers = consumers.merge(typed, on=Col.CONSUMER_ID, how="left", validate="one_to_one")
    watch.lap("clv")
    return consumers, summaries, clv, _write_consumer_files(consumers, summaries, settings, out_dir, messages)


def _write_tags(
    features: pd.DataFrame, settings: SegmentationConfig, out_dir: Path, messages: Messages
) -> Path:
    """``profile_tags.parquet``: every consumer's profile tags with their labels in the run's locale."""
    tags = profile_tags(features, settings.tags)
    tags[TagCol.TAG_LABEL] = tag_labels(tags, messages)
    return write_parquet_atomically(tags, out_dir / StepFile.PROFILE_TAGS)


def read_previous_tiers(previous_dir: Path | None) -> pd.DataFrame | None:
    """The previous run's consumer ids and tiers, exactly as it wrote them; None without ``previous_dir``.

    Read from the Parquet twin ``consumer_tiers.parquet`` (an export made before twins
    existed: from its consumer_tiers.csv, with a logged note).
    """
    if previous_dir is None:
        return None
    path = previous_dir / StepFile.CONSUMER_TIERS
    fix = "pass --previous with the output directory of an earlier `siyu segment` run"
    if not path.is_file() and not twin_path(path).is_file():
        raise SiyuError(f"{path}: previous consumer tiers not found\n  fix: {fix}")
    return read_history(path, [Col.CONSUMER_ID, TierCol.MEMBER_TIER], fix)


def read_communities(out_dir: Path) -> pd.DataFrame | None:
    """``consumer_id, distributor_id`` (each consumer's home distributor) of the segmentation run
    in ``out_dir``, ids exactly as written (from the Parquet twin); None when it wrote none.

    The flow hands this to the artifact writer, so that a consumer with a formula-like or
    ``NA`` id keeps its community.
    """
    path = out_dir / StepFile.CONSUMER_TIERS
    if not path.is_file() and not twin_path(path).is_file():
        return None
    fix = "rerun `siyu segment` (or the nightly) into this directory"
    homes = read_history(path, [Col.CONSUMER_ID, ConsumerCol.HOME_DISTRIBUTOR_ID], fix)
    return homes.rename(columns={ConsumerCol.HOME_DISTRIBUTOR_ID: Col.DISTRIBUTOR_ID}).dropna()


def _write_consumer_files(
    consumers: pd.DataFrame,
    summaries: ConsumerSummaries,
    settings: SegmentationConfig,
    out_dir: Path,
    messages: Messages,
) -> dict[str, Path]:
    columns = export_file(StepFile.CONSUMER_TIERS).column_names(horizon_days=settings.clv.horizon_days)
    export = for_people(consumers.reindex(columns=list(columns)), settings)
    tiers_csv = out_dir / StepFile.CONSUMER_TIERS
    paths = {
        StepFile.CONSUMER_TIERS: write_excel_csv(floats_as_text(localize_frame(export, messages)), tiers_csv),
        StepFile.CONSUMER_TIERS_TWIN: write_parquet_atomically(export, twin_path(tiers_csv)),
        StepFile.TIER_MIGRATION: write_excel_csv(
            localize_frame(summaries.migration, messages, tier_columns=settings.member_tiers.names),
            out_dir / StepFile.TIER_MIGRATION,
        ),
        StepFile.MEMBER_TIERS: write_excel_csv(
            localize_frame(tier_benefits(settings.member_tiers), messages), out_dir / StepFile.MEMBER_TIERS
        ),
        StepFile.RFM_SEGMENTS: write_excel_csv(
            localize_frame(summaries.rfm_segments, messages), out_dir / StepFile.RFM_SEGMENTS
        ),
        StepFile.RFM_GRID: write_excel_csv(
            localize_frame(summaries.rfm_grid, messages), out_dir / StepFile.RFM_GRID
        ),
    }
    if summaries.cluster_profiles is not None:
        paths[StepFile.CLUSTER_PROFILES] = write_excel_csv(
            localize_frame(summaries.cluster_profiles, messages), out_dir / StepFile.CLUSTER_PROFILES
        )
    return paths


def floats_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its float64 columns as the text pandas writes for them in a CSV (numpy's
    shortest round-trip repr, empty when missing): the same bytes, and a long export
    (``consumer_tiers`` at a million consumers) then goes through ``write_excel_csv``'s DuckDB
    writer, several threads, instead of pandas' one. Unchanged when a float is negative: as text
    it would be taken for a formula and guarded, where pandas writes the number."""
    floats = [column for column in frame.columns if frame[column].dtype == "float64"]
    if not floats or any(np.signbit(frame[column].to_numpy()).any() for column in floats):
        return frame
    texts = {
        column: pd.Series(
            np.where(frame[column].isna(), None, frame[column].to_numpy().astype(str)),
            index=frame.index,
            dtype="string",
        )
        for column in floats
    }
    return frame.assign(**texts)


def for_people(export: pd.DataFrame, settings: SegmentationConfig) -> pd.DataFrame:
    """consumer_tiers rows in the order marketing works them: segments in the configured order
    (the no-purchase segment last), then expected value, then spend, both highest first, then id."""
    priority: dict[str, int] = {}
    for rule in settings.rfm.segments:  # a segment of several rules ranks by its first
        priority.setdefault(rule.name, len(priority))
    segment_rank = export[RFMCol.SEGMENT].map(priority).fillna(len(priority)).rename(_SEGMENT_RANK)
    value = export[ExportCol.expected_value(settings.clv.horizon_days)].astype("float64").rename(_VALUE)
    keyed = pd.concat([export, segment_rank, value], axis=1)
    keyed = keyed.sort_values(
        [_SEGMENT_RANK, _VALUE, ConsumerCol.MONETARY, Col.CONSUMER_ID],
        ascending=[True, False, False, True],
        na_position="last",
        kind="mergesort",
    )
    return keyed.drop(columns=[_SEGMENT_RANK, _VALUE]).reset_index(drop=True)


@dataclass(frozen=True)
class _DistributorResult:
    paths: dict[str, Path]
    tier_counts: dict[str, int]
    coaching: int


def _distributor_files(
    con: duckdb.DuckDBPyConnection,
    as_of: AsOf,
    settings: SegmentationConfig,
    out_dir: Path,
    messages: Messages,
) -> _DistributorResult:
    # seconds each at 300,000 distributors: counted parts (the files count their own rows)
    with progress("distributor tiers", total=3, unit="parts") as bar:
        monthly = distributor_monthly(con, as_of, months=settings.history_months)
        bar.advance()
        features = distributor_features(con, as_of, monthly)
        bar.advance()
        tiered = assign_distributor_tiers(features, settings.distributor_tiers, messages)
        export = tiered.assign(
            **{DistributorFeatureCol.MONTH: tiered[DistributorFeatureCol.MONTH].dt.strftime("%Y-%m")}
        )
        export = export[list(export_file(StepFile.DISTRIBUTOR_TIERS).column_names())]
        coached = coaching_list(export)
        bar.advance()
    paths = {
        StepFile.DISTRIBUTOR_TIERS: write_excel_csv(
            localize_frame(export, messages), out_dir / StepFile.DISTRIBUTOR_TIERS
        ),
        StepFile.DISTRIBUTOR_COACHING: write_excel_csv(
            localize_frame(coached, messages), out_dir / StepFile.DISTRIBUTOR_COACHING
        ),
        StepFile.DISTRIBUTOR_MONTHLY: write_parquet_atomically(
            monthly, out_dir / StepFile.DISTRIBUTOR_MONTHLY
        ),
    }
    return _DistributorResult(paths, tier_counts(tiered), len(coached))


def _counts(values: pd.Series) -> dict[str, int]:
    counts = values.value_counts()
    return {
        str(name): int(count) for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    }


def _churn_metrics(records: list[dict[str, object]]) -> dict[str, float]:
    from models.churn import tracking_metrics

    return tracking_metrics(pd.DataFrame(records), "churn_validation") if records else {}


def _warm_up_clv_meanwhile(settings: SegmentationConfig) -> threading.Thread | None:
    """Import PyMC and pymc-marketing and load PyTensor's compiled-module cache
    (``models.clv.warm_up``: seconds of pure Python, once per process) on a thread while DuckDB,
    which lets go of the GIL, builds the consumer features and the CLV frames; the CLV fits
    then find them ready.

    Nothing else is imported or compiled meanwhile (the caller joins before going on), and a
    failure is left for the CLV step to meet and report as it always did.
    """
    if not settings.clv.enabled:
        return None

    def load() -> None:
        try:
            warm_up()
        except Exception:  # the CLV fit imports and compiles again and reports the error
            logger.debug("warming up the CLV libraries ahead of the CLV fit failed", exc_info=True)

    thread = threading.Thread(target=load, name="siyu-warm-up-clv", daemon=True)
    thread.start()
    return thread


def _clv_frames(
    con: duckdb.DuckDBPyConnection, as_of: AsOf, settings: SegmentationConfig
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None:
    """Training, validation and current frames of the CLV and churn models
    (``features.clv.model_frames``); None when CLV is off."""
    if not settings.clv.enabled:
        return None
    frames = model_frames(con, as_of, settings.clv.horizon_days, settings.clv.returned_lines)
    logger.info(
        "CLV frames: %s training, %s validation and %s current buyers",
        *(f"{len(frame):,}" for frame in frames),
    )
    return frames


def _clv(
    frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None,
    choice: _Kept[Choice] | None,
    models: _Kept[FittedModels] | None,
    as_of: AsOf,
    settings: SegmentationConfig,
) -> pd.DataFrame | None:
    """The CLV columns of every buyer (``models.segmentation.clv_columns``); None when CLV is off.

    The choice is stored when tonight made it, the fitted models when tonight fitted them for a
    choice (kept or made tonight; not the no-choice fallback)."""
    if frames is None:
        return None
    train, validation, current = frames
    carried = None if choice is None else choice.carried
    kept = None if models is None else models.carried
    clv = clv_columns(current, settings, train, validation, carried, kept)
    if clv.attrs["carried"]:
        logger.info("churn / value models: kept the choice of %s: %s", choice.made_on, clv.attrs["chosen"])
    else:
        logger.info("churn / value models chosen on the window before %s: %s", as_of, clv.attrs["chosen"])
        if choice is not None and clv.attrs["validation"]:  # a choice was made (not the no-choice fallback)
            made = Choice(dict(clv.attrs["chosen"]), pd.DataFrame(clv.attrs["validation"]))
            write_choice(choice.path, choice.key, made)
    if not clv.attrs["refitted"]:
        logger.info("churn / value models: predicted with the models fitted as of %s", models.made_on)
    elif models is not None and clv.attrs["validation"]:
        write_models(models.path, models.key, clv.attrs["models"])
    return clv


@dataclass
class _Kept(Generic[T]):
    """Tonight's side of a choice kept between nights (``models.cadence``): the stored choice
    when it holds (``carried``, made as of ``made_on``), else None, and the key a choice made
    tonight is stored under (``key``)."""

    path: Path
    carried: T | None
    made_on: date | None
    digest: str
    as_of: AsOf
    fingerprint: Callable[[date], str]

    @classmethod
    def open(
        cls,
        path: Path,
        cadence: Cadence,
        every_days: int,
        stored: tuple[KeptKey, T] | None,
        digest: str,
        as_of: AsOf,
        fingerprint: Callable[[date], str],
        again: str,
    ) -> _Kept[T]:
        """The stored choice when ``models.cadence.redo_reason`` finds none; else logs ``again``
        with the reason."""
        key, value = (None, None) if stored is None else stored
        reason = redo_reason(cadence, every_days, key, digest, as_of, fingerprint)
        if reason is None and key is not None:
            return cls(path, value, key.as_of, digest, as_of, fingerprint)
        logger.info("%s (%s)", again, reason)
        return cls(path, None, None, digest, as_of, fingerprint)

    @property
    def key(self) -> KeptKey:
        """What a choice made tonight is stored under."""
        return KeptKey(self.digest, self.as_of.date, self.fingerprint(self.as_of.date))


@dataclass(frozen=True)
class _Choices:
    """The choices the segmentation keeps between nights (None: no store, every choice made tonight)."""

    churn: _Kept[Choice] | None
    clusters: _Kept[int] | None
    models: _Kept[FittedModels] | None = None  # the churn / value models as fitted

    @classmethod
    def open(
        cls, folder: Path | None, con: duckdb.DuckDBPyConnection, as_of: AsOf, settings: SegmentationConfig
    ) -> _Choices:
        if folder is None:
            return cls(None, None)
        fingerprint = functools.cache(lambda day: history_fingerprint(con, AsOf.of(day)))
        churn = models = None
        if settings.clv.enabled:
            digest = churn_config_hash(settings.clv, settings.churn)  # the choice's and its models'
            stored = read_choice(folder / CHOICE_FILE)
            churn = _Kept.open(
                folder / CHOICE_FILE,
                RECHOOSE,
                settings.churn.rechoose_every_days,
                None if stored is None else (stored.key, stored.choice),
                digest,
                as_of,
                fingerprint,
                "churn / value models: comparing the candidates tonight",
            )
            fitted = read_models(folder / MODELS_FILE)
            models = _Kept.open(
                folder / MODELS_FILE,
                REFIT,
                settings.churn.refit_every_days,
                None if fitted is None else (fitted.key, fitted.models),
                digest,
                as_of,
                fingerprint,
                "churn / value models: fitting the chosen ones tonight",
            )
        clusters = None
        if settings.clusters.enabled:
            kept_k = read_k(folder / K_FILE)
            clusters = _Kept.open(
                folder / K_FILE,
                RECHOOSE_K,
                settings.clusters.rechoose_every_days,
                None if kept_k is None else (kept_k.key, kept_k.k),
                cluster_config_hash(settings.clusters),
                as_of,
                fingerprint,
                "clusters: choosing k by silhouette tonight",
            )
        return cls(churn, clusters, models)

    def store_clusters(self, summaries: ConsumerSummaries) -> None:
        """Store tonight's k when tonight chose it (a kept k that no longer fits is chosen again)."""
        if self.clusters is None or not summaries.cluster_silhouettes or summaries.clusters is None:
            return
        write_k(self.clusters.path, self.clusters.key, summaries.clusters, summaries.cluster_silhouettes)
