"""A simulated S2b2C social-retail platform: the six contract tables plus the truth planted in them.

Suppliers list products in categories; products sell in flash-sale windows (a few evergreen
staples sell all period); distributors share them into their communities; consumers buy
through their home distributor. ``simulate`` writes into ``out_dir``::

    orders.parquet products.parquet consumers.parquet distributors.parquet
    events.parquet complaints.parquet
    truth/defective_products.csv        product_id, category, complaint_probability, category_baseline,
                                        defect_onset (date it turned defective; empty: from launch)
    truth/consumer_tastes.parquet       consumer_id, category, weight  (category shares, sum 1)
    truth/consumer_brand_tastes.parquet consumer_id, supplier_id, weight  (choice boost of a favourite)
    truth/community_tastes.parquet      distributor_id, category, weight  (category shares, sum 1)
    truth/consumer_traits.parquet       consumer_id, purchase_rate, price_sensitivity, churned_at

With ``layout="partitioned"`` orders, events and complaints land as a data lake lands them,
one Hive-style partition per day: ``orders/dt=2025-12-31/part-0.parquet`` (see ``sinks``).

What is planted, so that models can be checked against it:

- heavy-tailed community sizes (Zipf-like: a few pillar distributors, a long tail of small ones);
- homophily: a consumer's category taste mixes the community's taste (share ``homophily``) with
  an individual one shaped by age and gender; favourite brands come mostly from the community;
- flash-sale windows: a product sells only inside [sale_start, sale_end] (open end = still on
  sale), demand peaks right after launch, and products launch all through the period;
- repeat purchases of consumables at category-specific intervals while the product is on sale;
- weekly seasonality, shopping festivals (3.8, 618, Double 11, Double 12) and a Spring Festival lull;
- price sensitivity (consumers differ; cheaper candidates win more often for sensitive ones);
- arrivals all through the period (registered_at, a growing platform) and dormancy: as in BG/NBD,
  a consumer goes dormant after each basket with a personal chance, a quarter of them after the
  first; purchase rates are Gamma-distributed, so most buyers order once or twice (median 1-2)
  while a heavy tail orders weekly or more;
- views/clicks/carts shortly before each order line, shares by community members, views of the
  candidates not chosen and browse-only sessions (about 2.5 events per order line);
- about 4% returned lines (more for apparel and defective products) and 1.5% cancelled orders;
- defective products (``defective_share``) whose complaint probability is 6-10 times their
  category's baseline (0.5-2% of lines, by category); complaints come a few days after the order.
  A share ``onset_share`` of them (default none) turn defective on a day of their sale instead of
  from launch: lines ordered before that day complain at the product's healthy rate.

Ids are compact and fixed-width: C0000001 (consumer), D00001, P000001, S0001 (supplier),
O000000001 (order), K0000001 (complaint).

Rule of thumb for sizing: about ``lines_per_consumer_year`` (10) order lines per consumer per 365
days, so ``consumers=1_000_000, days=365`` gives about 10M order lines, 6.5M orders and 27M events
(about 1 minute on 2 cores, under 1 GB of memory, 620 MB of Parquet). The calibration holds for
periods of a few months to about two years; over longer ones dormancy leaves fewer lines per year.

Consumers are simulated in fixed chunks of ``CHUNK_CONSUMERS``, each with its own random stream
derived from the seed (``numpy.random.SeedSequence``), and every table is written row group by row
group. The same config gives byte-identical files. Each file is written as ``<name>.partial`` and
renamed when the whole simulation has succeeded.

The package follows the simulation: ``market`` (fixed facts: categories, occupations,
demographics), ``config`` (the knobs, the summary, the truth files), ``sampling`` (vectorised
draws), ``world`` (calendar, catalogue, communities), ``people`` (consumers of a chunk),
``baskets`` (baskets and lines), ``orderbook`` (orders, complaints, events), ``tables`` (a chunk
end to end as Arrow tables) and ``sinks`` (writing, through ``sources.table_writer``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from features.columns import Table
from sources.simulator.config import TRUTH_DIR, SimulationConfig, SimulationSummary, Truth
from sources.simulator.market import CATEGORIES
from sources.simulator.people import calibrated_base_rate
from sources.simulator.sinks import Sinks
from sources.simulator.tables import complaint_rates_frame, simulate_chunk
from sources.simulator.world import World, build_world

__all__ = [
    "CATEGORIES",
    "CHUNK_CONSUMERS",
    "TRUTH_DIR",
    "SimulationConfig",
    "SimulationSummary",
    "Truth",
    "healthy_complaint_rates",
    "simulate",
]

logger = logging.getLogger(__name__)

CHUNK_CONSUMERS = 50_000


def simulate(out_dir: Path, config: SimulationConfig) -> SimulationSummary:
    """Simulate the platform described by ``config`` into ``out_dir`` (see the module docstring)."""
    began = time.perf_counter()
    out_dir = Path(out_dir)
    (out_dir / TRUTH_DIR).mkdir(parents=True, exist_ok=True)
    world = _world(config)
    with Sinks(out_dir, config.layout) as sinks:
        sinks.write_world(world)
        order_offset = complaint_offset = 0
        chunks = range(0, config.consumers, CHUNK_CONSUMERS)
        for number, first in enumerate(chunks):
            rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(1, number)))
            count = min(CHUNK_CONSUMERS, config.consumers - first)
            chunk = simulate_chunk(world, first, count, order_offset, complaint_offset, rng)
            sinks.write_chunk(chunk)
            order_offset += chunk.orders
            complaint_offset += chunk.complaints
            logger.info(
                "chunk %d/%d: %d consumers, %d order lines, %d events",
                number + 1,
                len(chunks),
                count,
                chunk.tables[Table.ORDERS].num_rows,
                chunk.tables[Table.EVENTS].num_rows if Table.EVENTS in chunk.tables else 0,
            )
        sinks.finish()
    rows = sinks.rows
    seconds = time.perf_counter() - began
    summary = SimulationSummary(out_dir, rows, rows[Table.ORDERS], order_offset, config.last_day, seconds)
    logger.info("simulated %s in %.1fs: %s", out_dir, seconds, rows)
    return summary


def healthy_complaint_rates(config: SimulationConfig) -> pd.DataFrame:
    """Each product of ``config``'s world: its complaint probability while healthy and its
    category's baseline (product id, ``Truth.COMPLAINT_PROBABILITY``, ``Truth.CATEGORY_BASELINE``)."""
    return complaint_rates_frame(_world(config))


def _world(config: SimulationConfig) -> World:
    """The world of ``config``, drawn from the seed's first stream, its base rate calibrated."""
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(0,)))
    world = build_world(config, rng)
    return replace(world, base_rate=calibrated_base_rate(world, rng))
