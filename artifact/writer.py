"""Write the backend artifact: the nightly lists as NumPy arrays, id maps and a manifest, no pickle.

``write_artifact`` takes plain pandas frames, so it does not matter which model produced
the lists, and writes one self-contained directory that ``artifact.loader`` (numpy and
pyarrow only) serves. Layout, dtypes and the fallback rules are documented in
docs/artifact.md; in short::

    manifest.json             format, version, meta (as_of, model...), counts, SHA-256 of every file
    consumer_ids.parquet      row -> consumer_id (column ``id``); the same for products, distributors
    consumer_items.npy        int32 [consumers, N]: product rows, best first, padded with -1
    consumer_scores.npy       float32 [consumers, N]: their scores, padded with NaN
    consumer_community.npy    int32 [consumers]: the consumer's community (distributor row) or -1
    distributor_items.npy     (+ _scores) [distributors, N]: each distributor's list to share
    similar_items.npy         (+ _scores) [products, N]: each product's similar products
    community_items.npy       (+ _scores) [distributors, N]: fallback list of each community
    global_items.npy          (+ _scores) [N]: the global fallback list

Ids are stored as text and sorted, so the same lists always give byte-identical files. The
directory appears whole or not at all: it is written under a hidden temporary name beside
``out_dir`` and renamed into place.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from artifact.loader import FORMAT, FORMAT_VERSION, ID_COLUMN, MANIFEST_FILE, Counts, Files, sha256_of
from features.catalog import StepFile
from features.columns import Col
from features.errors import SiyuError
from features.files import move_into_place
from features.progress import progress
from models.recommenders.base import RecCol

logger = logging.getLogger(__name__)

PAD_ITEM = -1
BATCH_ROWS = 1 << 20  # list rows read at a time by write_artifact_from_lists


@dataclass(frozen=True)
class ArtifactArrays:
    """Everything an artifact holds, in memory: the three id maps and the arrays by file name."""

    consumer_ids: np.ndarray
    product_ids: np.ndarray
    distributor_ids: np.ndarray
    arrays: dict[str, np.ndarray]

    def counts(self) -> dict[str, int]:
        """Sizes for the manifest: ids per map and the width (list length) of each list matrix."""
        return {
            Counts.CONSUMERS: len(self.consumer_ids),
            Counts.PRODUCTS: len(self.product_ids),
            Counts.DISTRIBUTORS: len(self.distributor_ids),
            Counts.CONSUMER_LIST_LENGTH: self.arrays[Files.CONSUMER_ITEMS].shape[1],
            Counts.DISTRIBUTOR_LIST_LENGTH: self.arrays[Files.DISTRIBUTOR_ITEMS].shape[1],
            Counts.SIMILAR_LIST_LENGTH: self.arrays[Files.SIMILAR_ITEMS].shape[1],
            Counts.COMMUNITY_LIST_LENGTH: self.arrays[Files.COMMUNITY_ITEMS].shape[1],
            Counts.GLOBAL_LIST_LENGTH: self.arrays[Files.GLOBAL_ITEMS].shape[0],
            Counts.CONSUMERS_WITH_LIST: int((self.arrays[Files.CONSUMER_ITEMS][:, :1] >= 0).sum()),
            Counts.COMMUNITIES_WITH_LIST: int((self.arrays[Files.COMMUNITY_ITEMS][:, :1] >= 0).sum()),
        }


def write_artifact(
    out_dir: Path,
    consumer_lists: pd.DataFrame,
    distributor_lists: pd.DataFrame | None,
    similar_items: pd.DataFrame | None,
    fallback: pd.DataFrame | None,
    consumer_community: pd.DataFrame | None,
    meta: Mapping[str, Any],
) -> Path:
    """Write the artifact directory ``out_dir`` from plain frames; return ``out_dir``.

    - ``consumer_lists``: ``consumer_id, product_id, rank, score`` (other columns ignored)
    - ``distributor_lists``: ``distributor_id, product_id, rank, score``
    - ``similar_items``: ``product_id, similar_product_id, rank, score``
    - ``fallback``: ``distributor_id, product_id, rank, score``; rows with an empty
      ``distributor_id`` form the global list, the others that distributor's community list
    - ``consumer_community``: ``consumer_id, distributor_id`` (home distributor)
    - ``meta``: JSON-able facts about the lists (as_of, model name and version, ...)

    Rank 1 is the best; ranks need not be contiguous but must not repeat within one list.
    """
    started = time.perf_counter()
    built = build_arrays(consumer_lists, distributor_lists, similar_items, fallback, consumer_community)
    path = write_arrays(out_dir, built, meta)
    logger.info(
        "artifact: %d consumers, %d products, %d distributors written to %s in %.1fs",
        len(built.consumer_ids),
        len(built.product_ids),
        len(built.distributor_ids),
        path,
        time.perf_counter() - started,
    )
    return path


def write_artifact_from_lists(
    lists_dir: Path, out_dir: Path, meta: Mapping[str, Any], consumer_community: pd.DataFrame | None = None
) -> Path:
    """``write_artifact`` from the recommend step's files in ``lists_dir`` (absent optional files: no list).

    ``consumer_community``: ``consumer_id, distributor_id`` (e.g. ``consumer_tiers.csv``'s
    ``home_distributor_id`` renamed), so that consumers get their community list on top-ups.
    The files are streamed in batches of ``BATCH_ROWS`` rows, never read whole: memory is the
    id maps and the arrays the artifact holds, not the list rows (50M at 10M order lines). The
    artifact is byte for byte the one ``write_artifact`` makes from the same rows as frames.
    """
    started = time.perf_counter()
    if not (lists_dir / StepFile.CONSUMER_LISTS).is_file():
        raise SiyuError(
            f"{lists_dir / StepFile.CONSUMER_LISTS}: not found\n"
            "  fix: run the recommend step first (siyu recommend)"
        )
    built = arrays_from_files(lists_dir, consumer_community)
    path = write_arrays(out_dir, built, meta)
    logger.info(
        "artifact: %d consumers, %d products, %d distributors streamed from %s to %s in %.1fs",
        len(built.consumer_ids),
        len(built.product_ids),
        len(built.distributor_ids),
        lists_dir,
        path,
        time.perf_counter() - started,
    )
    return path


@dataclass(frozen=True)
class _ListFile:
    """One list file of the recommend step: its name in messages, path, owner and item columns."""

    name: str
    path: Path
    owner: str | None  # None: one list (the global fallback)
    item: str = Col.PRODUCT_ID

    @property
    def present(self) -> bool:
        return self.path.is_file()

    def batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        """``columns`` of the file, ``BATCH_ROWS`` rows at a time (ids as dictionaries)."""
        ids = [column for column in columns if column.endswith("_id")]
        reader = pq.ParquetFile(self.path, read_dictionary=ids)
        missing = [column for column in columns if column not in reader.schema_arrow.names]
        if missing:
            raise SiyuError(
                f"{self.name}: missing column(s) {', '.join(missing)}\n"
                f"  fix: pass a frame with columns {', '.join(columns)}"
            )
        rows = reader.metadata.num_rows
        if rows <= BATCH_ROWS:
            yield from reader.iter_batches(batch_size=BATCH_ROWS, columns=columns)
            return
        # a file of many batches (the consumer lists: 50M rows at 10M order lines) reports each pass
        with progress(f"artifact: {self.name} ({', '.join(columns)})", total=rows, unit="rows") as bar:
            for batch in reader.iter_batches(batch_size=BATCH_ROWS, columns=columns):
                yield batch
                bar.advance(batch.num_rows)

    def distinct(self, column: str) -> np.ndarray:
        """The distinct ids (text) of ``column``; empty when the file is absent."""
        if not self.present:
            return np.array([], dtype=object)
        parts = [_distinct_arrow(self.name, batch.column(0), column) for batch in self.batches([column])]
        return pd.unique(np.concatenate(parts)) if parts else np.array([], dtype=object)


def arrays_from_files(lists_dir: Path, consumer_community: pd.DataFrame | None) -> ArtifactArrays:
    """``build_arrays`` over the list files in ``lists_dir``, streamed (see ``write_artifact_from_lists``)."""
    consumers = _ListFile("consumer_lists", lists_dir / StepFile.CONSUMER_LISTS, Col.CONSUMER_ID)
    distributors = _ListFile("distributor_lists", lists_dir / StepFile.DISTRIBUTOR_LISTS, Col.DISTRIBUTOR_ID)
    similar = _ListFile(
        "similar_items", lists_dir / StepFile.SIMILAR_ITEMS, Col.PRODUCT_ID, RecCol.SIMILAR_PRODUCT_ID
    )
    communities = _ListFile("fallback", lists_dir / StepFile.FALLBACK_COMMUNITY, Col.DISTRIBUTOR_ID)
    global_list = _ListFile("fallback (global)", lists_dir / StepFile.FALLBACK_GLOBAL, None)
    community = _checked("consumer_community", consumer_community, (Col.CONSUMER_ID, Col.DISTRIBUTOR_ID))
    consumer_ids = _IdMap(
        Col.CONSUMER_ID, [consumers.distinct(Col.CONSUMER_ID), _frame_ids(community, Col.CONSUMER_ID)]
    )
    product_ids = _IdMap(
        Col.PRODUCT_ID,
        [
            consumers.distinct(Col.PRODUCT_ID),
            distributors.distinct(Col.PRODUCT_ID),
            similar.distinct(Col.PRODUCT_ID),
            similar.distinct(RecCol.SIMILAR_PRODUCT_ID),
            communities.distinct(Col.PRODUCT_ID),
            global_list.distinct(Col.PRODUCT_ID),
        ],
    )
    distributor_ids = _IdMap(
        Col.DISTRIBUTOR_ID,
        [
            distributors.distinct(Col.DISTRIBUTOR_ID),
            communities.distinct(Col.DISTRIBUTOR_ID),
            _frame_ids(community, Col.DISTRIBUTOR_ID),
        ],
    )
    arrays: dict[str, np.ndarray] = {}
    for source, owners, items, scores in (
        (consumers, consumer_ids, Files.CONSUMER_ITEMS, Files.CONSUMER_SCORES),
        (distributors, distributor_ids, Files.DISTRIBUTOR_ITEMS, Files.DISTRIBUTOR_SCORES),
        (similar, product_ids, Files.SIMILAR_ITEMS, Files.SIMILAR_SCORES),
        (communities, distributor_ids, Files.COMMUNITY_ITEMS, Files.COMMUNITY_SCORES),
    ):
        arrays[items], arrays[scores] = _streamed_matrix(source, owners, product_ids)
    global_items, global_scores = _streamed_matrix(global_list, None, product_ids)
    arrays[Files.GLOBAL_ITEMS], arrays[Files.GLOBAL_SCORES] = global_items[0], global_scores[0]
    arrays[Files.CONSUMER_COMMUNITY] = _community_rows(community, consumer_ids, distributor_ids)
    if not len(arrays[Files.GLOBAL_ITEMS]):
        logger.warning("artifact: no global fallback list; unknown consumers will get empty lists")
    return ArtifactArrays(consumer_ids.ids, product_ids.ids, distributor_ids.ids, arrays)


def _frame_ids(frame: pd.DataFrame, column: str) -> np.ndarray:
    return _distinct_text(frame[column]) if len(frame) else np.array([], dtype=object)


def _distinct_arrow(name: str, values: pa.Array, column: str) -> np.ndarray:
    if values.null_count:
        raise SiyuError(f"{name}: column '{column}' has empty ids\n  fix: drop or fill those rows")
    if pa.types.is_dictionary(values.type):
        used = np.unique(values.indices.to_numpy(zero_copy_only=False))
        values = values.dictionary.take(pa.array(used, pa.int64()))
    else:
        values = pc.unique(values)
    return np.asarray(pc.cast(values, pa.string()).to_numpy(zero_copy_only=False), dtype=object)


def _streamed_matrix(
    source: _ListFile, owners: _IdMap | None, product_ids: _IdMap
) -> tuple[np.ndarray, np.ndarray]:
    """``ranked_matrix`` of a list file, filled batch by batch (one owner's rows may span batches,
    in rank order); a file whose ranks go back across batches is read whole instead."""
    n_owners = len(owners) if owners is not None else 1
    filling = _Filling(source.name, n_owners, owners.ids if owners is not None else None)
    if not source.present:
        return filling.matrices()
    columns = [column for column in (source.owner, source.item, RecCol.RANK) if column is not None]
    names = pq.read_schema(source.path).names
    has_score = RecCol.SCORE in names
    for batch in source.batches(columns + ([RecCol.SCORE] if has_score else [])):
        frame = {name: batch.column(i) for i, name in enumerate(batch.schema.names)}
        owner_codes = (
            owners.arrow_codes(source.name, frame[source.owner], source.owner)
            if owners is not None and source.owner is not None
            else np.zeros(batch.num_rows, np.int64)
        )
        item_codes = product_ids.arrow_codes(source.name, frame[source.item], source.item)
        ranks = _ranks(source.name, frame[RecCol.RANK].to_pandas())
        scores = (
            frame[RecCol.SCORE].to_numpy(zero_copy_only=False).astype(np.float32)
            if has_score
            else np.full(batch.num_rows, np.nan, np.float32)
        )
        if not filling.add(owner_codes, item_codes, ranks, scores):
            logger.info(
                "artifact: %s is not in rank order across batches; reading it whole", source.path.name
            )
            return _whole_matrix(source, owners, product_ids)
    return filling.matrices()


def _whole_matrix(
    source: _ListFile, owners: _IdMap | None, product_ids: _IdMap
) -> tuple[np.ndarray, np.ndarray]:
    frame = pq.read_table(source.path).to_pandas()
    owner_codes = owners.codes(frame, source.owner) if owners is not None else np.zeros(len(frame), np.int64)
    n_owners = len(owners) if owners is not None else 1
    owner_ids = owners.ids if owners is not None else None
    return ranked_matrix(
        source.name, owner_codes, product_ids.codes(frame, source.item), frame, n_owners, owner_ids
    )


class _Filling:
    """``ranked_matrix``'s padded matrices, filled a batch of rows at a time."""

    def __init__(self, name: str, n_owners: int, owner_ids: np.ndarray | None) -> None:
        self.name = name
        self.owner_ids = owner_ids
        self.items = np.full((n_owners, 0), PAD_ITEM, np.int32)
        self.scores = np.full((n_owners, 0), np.nan, np.float32)
        self.filled = np.zeros(n_owners, np.int64)
        self.last_rank = np.zeros(n_owners, np.int64)

    def add(self, owners: np.ndarray, items: np.ndarray, ranks: np.ndarray, scores: np.ndarray) -> bool:
        """Place one batch's rows; False when an owner's rank goes back below an earlier batch's."""
        if not len(owners):
            return True
        order = np.lexsort((ranks, owners))
        owners, items, ranks, scores = owners[order], items[order], ranks[order], scores[order]
        first = np.r_[True, owners[1:] != owners[:-1]]
        repeated = np.flatnonzero(~first[1:] & (ranks[1:] == ranks[:-1]))
        if len(repeated):
            self._repeated(owners[repeated[0]], ranks[repeated[0]])
        previous = self.last_rank[owners[first]]
        if (ranks[first] < previous).any():
            return False
        clash = np.flatnonzero(ranks[first] == previous)
        if len(clash):
            self._repeated(owners[first][clash[0]], ranks[first][clash[0]])
        starts = np.flatnonzero(first)
        group = np.cumsum(first) - 1
        position = self.filled[owners] + np.arange(len(owners)) - starts[group]
        self._widen(int(position.max()) + 1)
        self.items[owners, position] = items
        self.scores[owners, position] = scores
        self.filled[owners[first]] += np.diff(np.r_[starts, len(owners)])
        self.last_rank[owners[first]] = ranks[np.r_[starts[1:], len(owners)] - 1]
        return True

    def matrices(self) -> tuple[np.ndarray, np.ndarray]:
        return self.items, self.scores

    def _widen(self, width: int) -> None:
        extra = width - self.items.shape[1]
        if extra > 0:
            self.items = np.pad(self.items, ((0, 0), (0, extra)), constant_values=PAD_ITEM)
            self.scores = np.pad(self.scores, ((0, 0), (0, extra)), constant_values=np.nan)

    def _repeated(self, owner: int, rank: int) -> None:
        who = f" of {self.owner_ids[owner]}" if self.owner_ids is not None else ""
        raise SiyuError(
            f"{self.name}: rank {rank} appears twice in the list{who}\n"
            "  fix: give every row of a list its own rank (1 = best)"
        )


def build_arrays(
    consumer_lists: pd.DataFrame,
    distributor_lists: pd.DataFrame | None,
    similar_items: pd.DataFrame | None,
    fallback: pd.DataFrame | None,
    consumer_community: pd.DataFrame | None,
) -> ArtifactArrays:
    """The artifact's id maps and arrays from the frames (pure; the frames are not changed)."""
    consumers = _checked("consumer_lists", consumer_lists, (Col.CONSUMER_ID, Col.PRODUCT_ID, RecCol.RANK))
    distributors = _checked(
        "distributor_lists", distributor_lists, (Col.DISTRIBUTOR_ID, Col.PRODUCT_ID, RecCol.RANK)
    )
    similar = _checked(
        "similar_items", similar_items, (Col.PRODUCT_ID, RecCol.SIMILAR_PRODUCT_ID, RecCol.RANK)
    )
    fallback_rows = _checked("fallback", fallback, (Col.DISTRIBUTOR_ID, Col.PRODUCT_ID, RecCol.RANK))
    community = _checked("consumer_community", consumer_community, (Col.CONSUMER_ID, Col.DISTRIBUTOR_ID))
    is_global = fallback_rows[Col.DISTRIBUTOR_ID].isna().to_numpy()
    global_rows, community_rows = fallback_rows[is_global], fallback_rows[~is_global]

    consumer_ids = _IdMap.of_frames(
        Col.CONSUMER_ID, [(consumers, Col.CONSUMER_ID), (community, Col.CONSUMER_ID)]
    )
    product_ids = _IdMap.of_frames(
        Col.PRODUCT_ID,
        [
            (consumers, Col.PRODUCT_ID),
            (distributors, Col.PRODUCT_ID),
            (similar, Col.PRODUCT_ID),
            (similar, RecCol.SIMILAR_PRODUCT_ID),
            (fallback_rows, Col.PRODUCT_ID),
        ],
    )
    distributor_ids = _IdMap.of_frames(
        Col.DISTRIBUTOR_ID,
        [
            (distributors, Col.DISTRIBUTOR_ID),
            (community_rows, Col.DISTRIBUTOR_ID),
            (community, Col.DISTRIBUTOR_ID),
        ],
    )
    arrays: dict[str, np.ndarray] = {}
    lists = _Lists(product_ids)
    arrays[Files.CONSUMER_ITEMS], arrays[Files.CONSUMER_SCORES] = lists.matrix(
        "consumer_lists", consumers, consumer_ids, Col.CONSUMER_ID
    )
    arrays[Files.DISTRIBUTOR_ITEMS], arrays[Files.DISTRIBUTOR_SCORES] = lists.matrix(
        "distributor_lists", distributors, distributor_ids, Col.DISTRIBUTOR_ID
    )
    arrays[Files.SIMILAR_ITEMS], arrays[Files.SIMILAR_SCORES] = lists.matrix(
        "similar_items", similar, product_ids, Col.PRODUCT_ID, RecCol.SIMILAR_PRODUCT_ID
    )
    arrays[Files.COMMUNITY_ITEMS], arrays[Files.COMMUNITY_SCORES] = lists.matrix(
        "fallback", community_rows, distributor_ids, Col.DISTRIBUTOR_ID
    )
    global_items, global_scores = ranked_matrix(
        "fallback (global)",
        np.zeros(len(global_rows), np.int64),
        product_ids.codes(global_rows, Col.PRODUCT_ID),
        global_rows,
        1,
    )
    arrays[Files.GLOBAL_ITEMS], arrays[Files.GLOBAL_SCORES] = global_items[0], global_scores[0]
    arrays[Files.CONSUMER_COMMUNITY] = _community_rows(community, consumer_ids, distributor_ids)
    if not len(global_rows):
        logger.warning("artifact: no global fallback list; unknown consumers will get empty lists")
    return ArtifactArrays(consumer_ids.ids, product_ids.ids, distributor_ids.ids, arrays)


def ranked_matrix(
    name: str,
    owners: np.ndarray,
    items: np.ndarray,
    frame: pd.DataFrame,
    n_owners: int,
    owner_ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``[n_owners, width]`` item rows (int32, -1 padded) and scores (float32, NaN padded), best rank first.

    ``owners`` and ``items`` are the rows' owner and item codes; ranks and scores come from
    ``frame``. The width is the longest list.
    """
    ranks = _ranks(name, frame[RecCol.RANK])
    scores = (
        frame[RecCol.SCORE].to_numpy(np.float32, na_value=np.nan)
        if RecCol.SCORE in frame
        else np.full(len(frame), np.nan, np.float32)
    )
    key = owners * (int(ranks.max(initial=0)) + 1) + ranks
    if len(key) > 1 and not (key[1:] >= key[:-1]).all():
        order = np.argsort(key, kind="stable")
        owners, items, scores, key = owners[order], items[order], scores[order], key[order]
    repeated = np.flatnonzero(key[1:] == key[:-1])
    if len(repeated):
        owner, rank = divmod(int(key[repeated[0]]), int(ranks.max()) + 1)
        who = f" of {owner_ids[owner]}" if owner_ids is not None else ""
        raise SiyuError(
            f"{name}: rank {rank} appears twice in the list{who}\n"
            "  fix: give every row of a list its own rank (1 = best)"
        )
    starts = np.searchsorted(owners, np.arange(n_owners))
    position = np.arange(len(owners)) - starts[owners]
    width = int(position.max()) + 1 if len(position) else 0
    item_matrix = np.full((n_owners, width), PAD_ITEM, np.int32)
    score_matrix = np.full((n_owners, width), np.nan, np.float32)
    item_matrix[owners, position] = items
    score_matrix[owners, position] = scores
    return item_matrix, score_matrix


def write_arrays(out_dir: Path, built: ArtifactArrays, meta: Mapping[str, Any]) -> Path:
    """Write ``built`` as the artifact directory ``out_dir``, atomically (temporary sibling, rename)."""
    _refuse_foreign(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    staging = out_dir.with_name(f".{out_dir.name}.partial-{token}")
    staging.mkdir()
    try:
        files: dict[str, dict[str, Any]] = {}
        for name, array in sorted(built.arrays.items()):
            with (staging / name).open("wb") as writer:
                np.save(writer, np.ascontiguousarray(array), allow_pickle=False)
            files[name] = {"dtype": str(array.dtype), "shape": list(array.shape)}
        for name, ids in (
            (Files.CONSUMER_IDS, built.consumer_ids),
            (Files.PRODUCT_IDS, built.product_ids),
            (Files.DISTRIBUTOR_IDS, built.distributor_ids),
        ):
            pq.write_table(pa.table({ID_COLUMN: pa.array(ids, pa.string())}), staging / name)
            files[name] = {"rows": len(ids)}
        for name, entry in files.items():
            entry.update(bytes=(staging / name).stat().st_size, sha256=sha256_of(staging / name))
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "meta": json.loads(json.dumps(dict(meta), default=str)),
            "counts": built.counts(),
            "files": dict(sorted(files.items())),
        }
        text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        (staging / MANIFEST_FILE).write_text(text, encoding="utf-8")
        move_into_place(staging, out_dir, token)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


class _Lists:
    """Turns long ranked lists (owner, product, rank, score) into padded matrices over one product map."""

    def __init__(self, product_ids: _IdMap) -> None:
        self.product_ids = product_ids

    def matrix(
        self,
        name: str,
        frame: pd.DataFrame,
        owners: _IdMap,
        owner_column: str,
        item_column: str = Col.PRODUCT_ID,
    ) -> tuple[np.ndarray, np.ndarray]:
        owner_codes = owners.codes(frame, owner_column)
        item_codes = self.product_ids.codes(frame, item_column)
        return ranked_matrix(name, owner_codes, item_codes, frame, len(owners), owners.ids)


class _IdMap:
    """Sorted distinct ids (as text) from some id arrays, and codes into them."""

    def __init__(self, name: str, parts: list[np.ndarray]) -> None:
        self.name = name
        parts = [part for part in parts if len(part)]
        distinct = pd.unique(np.concatenate(parts)) if parts else np.array([], dtype=object)
        self.ids = np.sort(distinct.astype(object))
        self._index = pd.Index(self.ids)

    @classmethod
    def of_frames(cls, name: str, columns: list[tuple[pd.DataFrame, str]]) -> _IdMap:
        """The ids of some columns of some frames."""
        return cls(name, [_distinct_text(frame[column]) for frame, column in columns if len(frame)])

    def __len__(self) -> int:
        return len(self.ids)

    def codes(self, frame: pd.DataFrame, column: str) -> np.ndarray:
        """Row numbers (int64) of ``frame[column]``'s ids in this map."""
        values = frame[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            local = self._index.get_indexer(values.cat.categories.astype(str))
            return local[values.cat.codes.to_numpy(np.int64)].astype(np.int64)
        codes, uniques = pd.factorize(values)
        return self._index.get_indexer(pd.Index(uniques).astype(str))[codes].astype(np.int64)

    def arrow_codes(self, name: str, values: pa.Array, column: str) -> np.ndarray:
        """Row numbers (int64) of an Arrow column's ids (a dictionary column maps its dictionary once)."""
        if values.null_count:
            raise SiyuError(f"{name}: column '{column}' has empty ids\n  fix: drop or fill those rows")
        if pa.types.is_dictionary(values.type):
            dictionary = pc.cast(values.dictionary, pa.string()).to_numpy(zero_copy_only=False)
            local = self._index.get_indexer(pd.Index(dictionary, dtype=object))
            return local[values.indices.to_numpy(zero_copy_only=False).astype(np.int64)].astype(np.int64)
        text = pc.cast(values, pa.string()).to_numpy(zero_copy_only=False)
        codes, uniques = pd.factorize(text)
        return self._index.get_indexer(pd.Index(uniques, dtype=object))[codes].astype(np.int64)


def _distinct_text(values: pd.Series) -> np.ndarray:
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        used = np.bincount(codes[codes >= 0], minlength=len(values.cat.categories)) > 0
        return values.cat.categories[used].astype(str).to_numpy(object)
    return pd.Index(pd.unique(values)).astype(str).to_numpy(object)


def _checked(name: str, frame: pd.DataFrame | None, columns: tuple[str, ...]) -> pd.DataFrame:
    """``frame``, or an empty frame when None, after checking its columns and id cells."""
    if frame is None:
        return pd.DataFrame(
            {column: pd.Series(dtype="int64" if column == RecCol.RANK else object) for column in columns}
        )
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise SiyuError(
            f"{name}: missing column(s) {', '.join(missing)}\n"
            f"  fix: pass a frame with columns {', '.join(columns)}"
        )
    id_columns = [column for column in columns if column != RecCol.RANK]
    if name == "fallback":  # an empty distributor_id marks the global list
        id_columns = [column for column in id_columns if column != Col.DISTRIBUTOR_ID]
    for column in id_columns:
        if frame[column].isna().any():
            raise SiyuError(f"{name}: column '{column}' has empty ids\n  fix: drop or fill those rows")
    return frame


def _ranks(name: str, ranks: pd.Series) -> np.ndarray:
    if ranks.isna().any() or not pd.api.types.is_numeric_dtype(ranks):
        raise SiyuError(
            f"{name}: column '{RecCol.RANK}' must be whole numbers\n  fix: rank each list 1, 2, 3, ..."
        )
    values = ranks.to_numpy(np.int64)
    if len(values) and (values.min() < 1 or not np.array_equal(values, ranks.to_numpy())):
        raise SiyuError(
            f"{name}: column '{RecCol.RANK}' must be whole numbers ≥ 1\n  fix: rank each list 1, 2, 3, ..."
        )
    return values


def _community_rows(community: pd.DataFrame, consumer_ids: _IdMap, distributor_ids: _IdMap) -> np.ndarray:
    rows = np.full(len(consumer_ids), PAD_ITEM, np.int32)
    if len(community):
        unique = community.drop_duplicates(Col.CONSUMER_ID, keep="last")
        rows[consumer_ids.codes(unique, Col.CONSUMER_ID)] = distributor_ids.codes(unique, Col.DISTRIBUTOR_ID)
    return rows


def _refuse_foreign(out_dir: Path) -> None:
    """Never replace a folder that is not an artifact (a typo in ``out_dir`` must not delete data)."""
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_FILE).is_file():
        raise SiyuError(
            f"{out_dir}: exists and is not a recommendation artifact (no {MANIFEST_FILE})\n"
            "  fix: choose an empty or new folder for the artifact"
        )
