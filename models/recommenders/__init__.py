"""Recommenders behind one interface (see ``models.recommenders.base`` for the contract).

Importing this package registers every model class, so ``load_recommender`` can restore any
of them by the name saved in ``model.json``; ``build_model(name, params)`` makes one from config.
"""

from models.recommenders.base import (
    RECOMMENDATION_COLUMNS,
    InteractionData,
    RecCol,
    Recommender,
    RecommendFilters,
    ScoreBlock,
    load_recommender,
    registered_models,
)
from models.recommenders.implicit_models import (
    ALSRecommender,
    BPRRecommender,
    EASERecommender,
    ItemKNNRecommender,
)
from models.recommenders.lightfm_model import LightFMRecommender
from models.recommenders.popularity import PopularityRecommender, RepeatPurchaseRecommender
from models.recommenders.ranker import RankerRecommender, build_component


def build_model(kind: str, params: dict | None = None) -> Recommender:
    """An unfitted model of ``kind`` (als, bpr, itemknn, ease, lightfm, popularity, repeat, ranker)."""
    return build_component({"kind": kind, **(params or {})})


__all__ = [
    "RECOMMENDATION_COLUMNS",
    "ALSRecommender",
    "BPRRecommender",
    "EASERecommender",
    "InteractionData",
    "ItemKNNRecommender",
    "LightFMRecommender",
    "PopularityRecommender",
    "RankerRecommender",
    "RecCol",
    "RecommendFilters",
    "Recommender",
    "RepeatPurchaseRecommender",
    "ScoreBlock",
    "build_model",
    "load_recommender",
    "registered_models",
]
