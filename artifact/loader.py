"""Serve siyu's nightly recommendation lists from the backend artifact (one file, numpy + pyarrow only).

A backend can vendor this file as it is: it imports only the standard library, numpy and
pyarrow, never pandas or the rest of the pipeline. The artifact it reads is the directory
``artifact.writer.write_artifact`` writes (``exports/current/artifact/``; format in
docs/artifact.md)::

    from loader import load            # or: from artifact.loader import load

    recommender = load("exports/current/artifact")    # checks every file's SHA-256 once
    recommender.recommend("C000123", k=10, exclude={"P42"})
    recommender.for_distributor("D0007", k=20)
    recommender.similar("P42", k=10)

Each call returns a list of ``Recommendation(product_id, score, source)``. ``source`` says
where an item came from: ``personal`` (the consumer's own list), ``distributor`` (the
distributor's list), ``similar`` (the product's similar items), ``community`` (the top list
of the consumer's community, i.e. the home distributor's consumers) or ``global``. Lists
are topped up in that order: an unknown consumer, or one whose list runs short after
``exclude``, gets the community list and then the global one, so the answer is never empty
while a fallback list exists. Scores are only comparable within one ``source``.

Ids are matched as text: ``recommend(123)`` looks up ``"123"``. Lookups are read-only, so
one loaded object can serve many threads.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow.parquet as pq

FORMAT = "siyu-recommendation-artifact"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
ID_COLUMN = "id"


class Files:
    """File names inside an artifact directory (the manifest lists each with its SHA-256)."""

    CONSUMER_IDS = "consumer_ids.parquet"
    PRODUCT_IDS = "product_ids.parquet"
    DISTRIBUTOR_IDS = "distributor_ids.parquet"
    CONSUMER_ITEMS = "consumer_items.npy"
    CONSUMER_SCORES = "consumer_scores.npy"
    CONSUMER_COMMUNITY = "consumer_community.npy"
    DISTRIBUTOR_ITEMS = "distributor_items.npy"
    DISTRIBUTOR_SCORES = "distributor_scores.npy"
    SIMILAR_ITEMS = "similar_items.npy"
    SIMILAR_SCORES = "similar_scores.npy"
    COMMUNITY_ITEMS = "community_items.npy"
    COMMUNITY_SCORES = "community_scores.npy"
    GLOBAL_ITEMS = "global_items.npy"
    GLOBAL_SCORES = "global_scores.npy"

    ID_MAPS: tuple[str, ...] = (CONSUMER_IDS, PRODUCT_IDS, DISTRIBUTOR_IDS)
    ARRAYS: tuple[str, ...] = (
        CONSUMER_ITEMS,
        CONSUMER_SCORES,
        CONSUMER_COMMUNITY,
        DISTRIBUTOR_ITEMS,
        DISTRIBUTOR_SCORES,
        SIMILAR_ITEMS,
        SIMILAR_SCORES,
        COMMUNITY_ITEMS,
        COMMUNITY_SCORES,
        GLOBAL_ITEMS,
        GLOBAL_SCORES,
    )
    ALL: tuple[str, ...] = ID_MAPS + ARRAYS


class Counts:
    """Keys of the manifest's ``counts``: ids per map, list lengths and how many rows have a list."""

    CONSUMERS = "consumers"
    PRODUCTS = "products"
    DISTRIBUTORS = "distributors"
    CONSUMER_LIST_LENGTH = "consumer_list_length"
    DISTRIBUTOR_LIST_LENGTH = "distributor_list_length"
    SIMILAR_LIST_LENGTH = "similar_list_length"
    COMMUNITY_LIST_LENGTH = "community_list_length"
    GLOBAL_LIST_LENGTH = "global_list_length"
    CONSUMERS_WITH_LIST = "consumers_with_list"
    COMMUNITIES_WITH_LIST = "communities_with_list"


class Source:
    """Where a recommended item came from."""

    PERSONAL = "personal"
    DISTRIBUTOR = "distributor"
    SIMILAR = "similar"
    COMMUNITY = "community"
    GLOBAL = "global"


class Recommendation(NamedTuple):
    """One recommended product: its id, its score in ``source``'s list, and that source."""

    product_id: str
    score: float
    source: str


class ArtifactError(Exception):
    """The artifact directory is missing a file, fails its checksum or is of an unknown format."""


class Recommender:
    """Lookups over one loaded artifact. Build it with ``load(path)``."""

    def __init__(
        self, path: Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray], ids: dict
    ) -> None:
        self.path = path
        self.manifest = manifest
        self._product_ids: list[str] = ids[Files.PRODUCT_IDS]
        self._product_index = {product: index for index, product in enumerate(self._product_ids)}
        self._consumer_index: dict[str, int] = _index(ids[Files.CONSUMER_IDS])
        self._distributor_index: dict[str, int] = _index(ids[Files.DISTRIBUTOR_IDS])
        self._arrays = arrays

    @property
    def meta(self) -> dict[str, Any]:
        """What the artifact was built from: as-of date, model name and version, ..."""
        return dict(self.manifest.get("meta", {}))

    @property
    def counts(self) -> dict[str, int]:
        """Consumers, products and distributors the artifact knows, and its list lengths (``Counts``)."""
        return dict(self.manifest["counts"])

    def knows_consumer(self, consumer_id: object) -> bool:
        """Whether the consumer has a row (a list of its own, or a known community)."""
        return _key(consumer_id) in self._consumer_index

    def recommend(
        self, consumer_id: object, k: int = 10, exclude: Iterable[object] = (), distributor_id: object = None
    ) -> list[Recommendation]:
        """The consumer's top ``k`` products, without ``exclude``, topped up by community then global.

        ``distributor_id`` (optional): the distributor the consumer arrived through; its
        community list is used when the artifact knows no community for the consumer.
        """
        k = _check_k(k)
        seen = self._product_rows(exclude)
        picks: list[Recommendation] = []
        row = self._consumer_index.get(_key(consumer_id))
        community = -1
        if row is not None:
            self._take(Files.CONSUMER_ITEMS, Files.CONSUMER_SCORES, row, Source.PERSONAL, k, seen, picks)
            community = int(self._arrays[Files.CONSUMER_COMMUNITY][row])
        if community < 0 and distributor_id is not None:
            community = self._distributor_index.get(_key(distributor_id), -1)
        return self._fallback(community, k, seen, picks)

    def for_distributor(
        self, distributor_id: object, k: int = 10, exclude: Iterable[object] = ()
    ) -> list[Recommendation]:
        """The distributor's top ``k`` products to share, topped up by its community list, then global."""
        k = _check_k(k)
        seen = self._product_rows(exclude)
        picks: list[Recommendation] = []
        row = self._distributor_index.get(_key(distributor_id), -1)
        if row >= 0:
            self._take(
                Files.DISTRIBUTOR_ITEMS, Files.DISTRIBUTOR_SCORES, row, Source.DISTRIBUTOR, k, seen, picks
            )
        return self._fallback(row, k, seen, picks)

    def similar(
        self, product_id: object, k: int = 10, exclude: Iterable[object] = ()
    ) -> list[Recommendation]:
        """Up to ``k`` products similar to ``product_id`` (never itself), topped up by the global list."""
        k = _check_k(k)
        seen = self._product_rows(exclude)
        picks: list[Recommendation] = []
        row = self._product_index.get(_key(product_id))
        if row is not None:
            seen.add(row)
            self._take(Files.SIMILAR_ITEMS, Files.SIMILAR_SCORES, row, Source.SIMILAR, k, seen, picks)
        return self._fallback(-1, k, seen, picks)

    def _fallback(
        self, community: int, k: int, seen: set[int], picks: list[Recommendation]
    ) -> list[Recommendation]:
        if len(picks) < k and community >= 0:
            self._take(
                Files.COMMUNITY_ITEMS, Files.COMMUNITY_SCORES, community, Source.COMMUNITY, k, seen, picks
            )
        if len(picks) < k:
            self._take(Files.GLOBAL_ITEMS, Files.GLOBAL_SCORES, None, Source.GLOBAL, k, seen, picks)
        return picks

    def _take(
        self,
        items_file: str,
        scores_file: str,
        row: int | None,
        source: str,
        k: int,
        seen: set[int],
        picks: list[Recommendation],
    ) -> None:
        """Append items of one list (a row of a matrix, or the global vector) not yet seen, up to ``k``."""
        items, scores = self._arrays[items_file], self._arrays[scores_file]
        if row is not None:
            items, scores = items[row], scores[row]
        product_ids = self._product_ids
        for item, score in zip(items.tolist(), scores.tolist(), strict=True):
            if item < 0:  # padding: the list has ended
                return
            if item in seen:
                continue
            seen.add(item)
            picks.append(Recommendation(product_ids[item], score, source))
            if len(picks) >= k:
                return

    def _product_rows(self, product_ids: Iterable[object]) -> set[int]:
        """Row numbers of the products to leave out (ids the artifact does not know are ignored)."""
        if isinstance(product_ids, str):
            product_ids = (product_ids,)
        index = self._product_index
        return {row for row in (index.get(_key(p)) for p in product_ids) if row is not None}


def load(path: str | Path, *, verify: bool = True, mmap: bool = True) -> Recommender:
    """Open an artifact directory; check the format and (``verify``) every file's size and SHA-256.

    ``mmap``: map the arrays read-only instead of reading them into memory (fast start, the
    operating system shares the pages between processes that load the same artifact).
    Raises ``ArtifactError`` naming the file when one is missing, changed or malformed.
    """
    root = Path(path)
    manifest = read_manifest(root)
    if verify:
        verify_files(root, manifest)
    arrays = {name: _load_array(root / name, mmap) for name in Files.ARRAYS}
    ids = {name: _read_ids(root / name) for name in Files.ID_MAPS}
    _check_shapes(root, arrays, ids)
    return Recommender(root, manifest, arrays, ids)


def read_manifest(root: Path) -> dict[str, Any]:
    """The artifact's manifest, after checking that it is one this loader understands."""
    path = root / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ArtifactError(f"{path}: cannot read the artifact manifest ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not a siyu recommendation artifact (format {FORMAT!r} expected)")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format version {version}, this loader reads version {FORMAT_VERSION}; "
            "use the loader shipped with the pipeline that wrote it"
        )
    files = manifest.get("files")
    missing = [name for name in Files.ALL if not isinstance(files, dict) or name not in files]
    if missing:
        raise ArtifactError(f"{path}: the manifest lists no checksum for {', '.join(missing)}")
    incomplete = [
        name
        for name, entry in sorted(files.items())
        if not isinstance(entry, dict)
        or not isinstance(entry.get("bytes"), int)
        or not isinstance(entry.get("sha256"), str)
    ]
    if incomplete:
        raise ArtifactError(
            f"{path}: no byte size or SHA-256 for {', '.join(incomplete)}; copy the artifact again"
        )
    return manifest


def verify_files(root: Path, manifest: dict[str, Any]) -> None:
    """Check every file the manifest lists: present, of the listed size, with the listed SHA-256."""
    for name, expected in sorted(manifest["files"].items()):
        file = root / name
        if not file.is_file():
            raise ArtifactError(f"{file}: missing from the artifact (listed in {MANIFEST_FILE})")
        if file.stat().st_size != expected["bytes"] or sha256_of(file) != expected["sha256"]:
            raise ArtifactError(
                f"{file}: checksum mismatch with {MANIFEST_FILE}: the file was changed or damaged "
                "after the artifact was written; copy the artifact again from the export"
            )


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file (read in blocks by ``hashlib.file_digest``)."""
    with path.open("rb") as reader:
        return hashlib.file_digest(reader, "sha256").hexdigest()


def _load_array(path: Path, mmap: bool) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as error:  # a damaged header fails in numpy's parser with any kind of error
        # (ValueError, SyntaxError, tokenize.TokenError, ...): each means the same to the caller
        raise ArtifactError(f"{path}: not a readable NumPy array ({error})") from None
    # A plain ndarray view of the mapping: slicing it is cheaper than slicing np.memmap.
    return array.view(np.ndarray)


def _read_ids(path: Path) -> list[str]:
    try:
        column = pq.read_table(path, columns=[ID_COLUMN]).column(ID_COLUMN)
    except (OSError, KeyError, ValueError) as error:
        raise ArtifactError(f"{path}: cannot read the id column '{ID_COLUMN}' ({error})") from None
    return column.to_pylist()


def _check_shapes(root: Path, arrays: dict[str, np.ndarray], ids: dict[str, list[str]]) -> None:
    rows = {
        Files.CONSUMER_ITEMS: len(ids[Files.CONSUMER_IDS]),
        Files.CONSUMER_SCORES: len(ids[Files.CONSUMER_IDS]),
        Files.CONSUMER_COMMUNITY: len(ids[Files.CONSUMER_IDS]),
        Files.DISTRIBUTOR_ITEMS: len(ids[Files.DISTRIBUTOR_IDS]),
        Files.DISTRIBUTOR_SCORES: len(ids[Files.DISTRIBUTOR_IDS]),
        Files.COMMUNITY_ITEMS: len(ids[Files.DISTRIBUTOR_IDS]),
        Files.COMMUNITY_SCORES: len(ids[Files.DISTRIBUTOR_IDS]),
        Files.SIMILAR_ITEMS: len(ids[Files.PRODUCT_IDS]),
        Files.SIMILAR_SCORES: len(ids[Files.PRODUCT_IDS]),
    }
    for name, expected in rows.items():
        if arrays[name].shape[0] != expected:
            raise ArtifactError(f"{root / name}: {arrays[name].shape[0]} rows, its id map has {expected}")
    for items, scores in (
        (Files.CONSUMER_ITEMS, Files.CONSUMER_SCORES),
        (Files.DISTRIBUTOR_ITEMS, Files.DISTRIBUTOR_SCORES),
        (Files.SIMILAR_ITEMS, Files.SIMILAR_SCORES),
        (Files.COMMUNITY_ITEMS, Files.COMMUNITY_SCORES),
        (Files.GLOBAL_ITEMS, Files.GLOBAL_SCORES),
    ):
        if arrays[items].shape != arrays[scores].shape:
            raise ArtifactError(f"{root / scores}: shape {arrays[scores].shape} differs from {items}")
        if arrays[items].size and arrays[items].max() >= len(ids[Files.PRODUCT_IDS]):
            raise ArtifactError(f"{root / items}: refers to a product beyond {Files.PRODUCT_IDS}")
    community = arrays[Files.CONSUMER_COMMUNITY]
    if community.size and community.max() >= len(ids[Files.DISTRIBUTOR_IDS]):
        raise ArtifactError(
            f"{root / Files.CONSUMER_COMMUNITY}: refers to a row beyond {Files.DISTRIBUTOR_IDS}"
        )


def _index(ids: list[str]) -> dict[str, int]:
    return dict(zip(ids, range(len(ids)), strict=True))


def _key(identifier: object) -> str:
    return identifier if isinstance(identifier, str) else str(identifier)


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)
