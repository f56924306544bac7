"""How the report writes numbers."""

from __future__ import annotations

import math

from reporting import formatting as fmt


def test_missing_values_are_a_dash() -> None:
    for write in (fmt.integer, fmt.percent, fmt.money, fmt.number):
        assert write(None) == "–" and write(math.nan) == "–"
    assert fmt.fixed(math.nan, 1) == "–"


def test_money_drops_cents_from_a_thousand_on() -> None:
    assert fmt.money(999.5) == "999.50"
    assert fmt.money(1000) == "1,000"
    assert fmt.money(-1234.5) == "-1,234"


def test_numbers_and_counts() -> None:
    assert fmt.integer(12345.6) == "12,346"
    assert fmt.plain_integer(12345.6) == "12346"
    assert fmt.percent(0.1234) == "12.3%"
    assert fmt.number(3.0) == "3" and fmt.number(3.0, 4) == "3.0000" and fmt.number(0.12345) == "0.12"
    assert fmt.slug("Long tail") == "long-tail"
