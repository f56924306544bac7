"""The column vocabulary of the siyu data contract.

This is the only module that spells raw column and table names. Everything else
refers to them through ``Col``, ``Table``, ``OrderStatus`` and ``EventType`` so that
a rename happens in one place, and a user's own column names are mapped onto these
by configuration (see ``features.reader.ColumnMapping``).
"""

from __future__ import annotations


class Table:
    """Names of the contract's tables (file stems in a data directory)."""

    ORDERS = "orders"
    PRODUCTS = "products"
    CONSUMERS = "consumers"
    DISTRIBUTORS = "distributors"
    EVENTS = "events"
    COMPLAINTS = "complaints"

    REQUIRED: tuple[str, ...] = (ORDERS, PRODUCTS)
    OPTIONAL: tuple[str, ...] = (CONSUMERS, DISTRIBUTORS, EVENTS, COMPLAINTS)
    ALL: tuple[str, ...] = REQUIRED + OPTIONAL


class Col:
    """Column names of the contract's tables."""

    # identifiers shared by several tables
    ORDER_ID = "order_id"
    CONSUMER_ID = "consumer_id"
    DISTRIBUTOR_ID = "distributor_id"
    PRODUCT_ID = "product_id"
    SUPPLIER_ID = "supplier_id"
    COMPLAINT_ID = "complaint_id"

    # orders
    QUANTITY = "quantity"
    UNIT_PRICE = "unit_price"
    ORDERED_AT = "ordered_at"
    STATUS = "status"

    # products
    CATEGORY = "category"
    LIST_PRICE = "list_price"
    SALE_START = "sale_start"
    SALE_END = "sale_end"

    # consumers and distributors
    REGISTERED_AT = "registered_at"
    JOINED_AT = "joined_at"
    AGE_BAND = "age_band"
    GENDER = "gender"
    CITY_TIER = "city_tier"
    OCCUPATION = "occupation"

    # events
    EVENT_TYPE = "event_type"
    EVENT_AT = "event_at"

    # complaints
    COMPLAINED_AT = "complained_at"
    REASON = "reason"

    # added by validation to quarantined rows
    SOURCE_ROW = "source_row"
    QUARANTINE_REASON = "quarantine_reason"


class OrderStatus:
    """Allowed values of ``orders.status``."""

    PAID = "paid"
    CANCELLED = "cancelled"
    RETURNED = "returned"

    ALL: tuple[str, ...] = (PAID, CANCELLED, RETURNED)


class EventType:
    """Allowed values of ``events.event_type``."""

    VIEW = "view"
    CLICK = "click"
    CART = "cart"
    FAVORITE = "favorite"
    SHARE = "share"

    ALL: tuple[str, ...] = (VIEW, CLICK, CART, FAVORITE, SHARE)
