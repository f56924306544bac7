"""Recommenders behind one interface (see ``models.recommenders.base`` for the contract).

Importing this package registers every model class, so ``load_recommender`` can restore any
of them by the name saved in ``model.json``; ``training.ModelSpec(kind=..., params=...).build()``
makes one from config.
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
from models.recommenders.ranker import RankerRecommender
from models.recommenders.spark_als import SparkALSRecommender

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
    "SparkALSRecommender",
    "load_recommender",
    "registered_models",
]
