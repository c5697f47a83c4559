"""Tables of the persistent book (SQLAlchemy Core). Migrations in ``migrations/`` create them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

#: Room for a journal element: a conversion element (64 characters) behind the prefix of a
#: variance prorated into stock, ``variance:conversion:``.
ELEMENT = 100
#: Room for a period statistic's name: an hours statistic names its work center (200) and
#: element (64) behind a prefix and a date, ``actual_hours@2026-01-16:``.
STATISTIC = 300


class Exact(TypeDecorator[Decimal]):
    """An exact decimal: NUMERIC on PostgreSQL; plain decimal text on SQLite, whose NUMERIC
    affinity would turn 0.1 into a binary float. The text keeps the value's scale as NUMERIC
    does (151.0 comes back as 151.0, not 151), so both databases give back the same Decimal
    and a book reloaded from either prints the same journal."""

    impl = sa.Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(80))
        return dialect.type_descriptor(sa.Numeric(asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"expected a Decimal, got {type(value).__name__}")
        return scaled_text(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(value)


def scaled_text(value: Decimal) -> str:
    """``value`` as PostgreSQL NUMERIC holds it: no exponent, digits after the point kept,
    no negative zero."""
    # ``str`` writes what format(value, "f") writes unless it writes an exponent, and costs
    # less (this is asked per amount written).
    text = str(value)
    if "E" in text:
        return format(abs(value) if value.is_zero() else value, "f")
    if text[0] == "-" and value.is_zero():
        return text[1:]
    return text


metadata = sa.MetaData()

settings = sa.Table(
    "book_settings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("triggers", sa.String(32), nullable=False),
    sa.Column("disposition", sa.String(16), nullable=False),
    sa.Column("inventory_unsold_conversion", sa.Boolean, nullable=False),
    sa.Column("shortage", sa.String(16), nullable=False),
    sa.Column("rounding", sa.String(16), nullable=False),
    sa.Column("count_variance", sa.String(16), nullable=False),
    #: JSON {variance type: disposition}, where a type's differs from ``disposition``.
    sa.Column("dispositions", sa.Text, nullable=False, server_default="{}"),
    #: Bumped whenever master data changes, so a process can keep its rolled-up standards.
    sa.Column("master_revision", sa.Integer, nullable=False),
    #: Bumped by every write transaction (:meth:`Store.transaction`), so a process can keep
    #: the book it posted on while no other writer wrote.
    sa.Column("revision", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

items = sa.Table(
    "items",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("uom", sa.String(16), nullable=False),
    sa.Column("flush", sa.String(16), nullable=False),
    sa.Column("material_cost", Exact),
    sa.Column("conversion", sa.Text, nullable=False),  # JSON {element: decimal string}
    sa.Column("triggers", sa.String(32)),
    sa.Column("lot_size", Exact, nullable=False, server_default="1"),
    sa.Column("family", sa.String(200), nullable=False, server_default=""),
    sa.Column("site", sa.String(200), nullable=False, server_default=""),
)

bom_lines = sa.Table(
    "bom_lines",
    metadata,
    sa.Column("item", sa.String(200), sa.ForeignKey("items.id"), primary_key=True),
    sa.Column("effective_from", sa.Date, primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("component", sa.String(200), sa.ForeignKey("items.id"), nullable=False),
    sa.Column("quantity", Exact, nullable=False),
    sa.Column("scrap", Exact, nullable=False),
    sa.Column("flush", sa.String(16)),
    sa.Column("effective_to", sa.Date),  # the same on every line of a version
    sa.Column("operation", sa.Integer),
)

work_centers = sa.Table(
    "work_centers",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
)

work_center_rates = sa.Table(
    "work_center_rates",
    metadata,
    sa.Column("work_center", sa.String(200), sa.ForeignKey("work_centers.id"), primary_key=True),
    sa.Column("element", sa.String(64), primary_key=True),
    sa.Column("rate", Exact, nullable=False),
)

routing_operations = sa.Table(
    "routing_operations",
    metadata,
    sa.Column("item", sa.String(200), sa.ForeignKey("items.id"), primary_key=True),
    sa.Column("effective_from", sa.Date, primary_key=True),
    sa.Column("operation", sa.Integer, primary_key=True),
    sa.Column("effective_to", sa.Date),  # the same on every operation of a version
    sa.Column("work_center", sa.String(200), sa.ForeignKey("work_centers.id"), nullable=False),
    sa.Column("setup_hours", Exact, nullable=False),
    sa.Column("run_hours", Exact, nullable=False),
    sa.Column("yield", Exact, nullable=False),
)

cost_sets = sa.Table(
    "cost_sets",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("effective", sa.Date),  # None: not released
    sa.Column("released_at", sa.DateTime(timezone=True)),
)

#: Who changed the standards, and when: each write of master data (what it added) and each
#: release of a cost set, in order (the audit trail of what the postings are costed at).
master_changes = sa.Table(
    "master_changes",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("recorded_by", sa.String(200)),  # NULL: through the library
    sa.Column("change", sa.Text, nullable=False),
)

cost_set_materials = sa.Table(
    "cost_set_materials",
    metadata,
    sa.Column("cost_set", sa.String(200), sa.ForeignKey("cost_sets.name"), primary_key=True),
    sa.Column("item", sa.String(200), sa.ForeignKey("items.id"), primary_key=True),
    sa.Column("cost", Exact, nullable=False),
)

cost_set_rates = sa.Table(
    "cost_set_rates",
    metadata,
    sa.Column("cost_set", sa.String(200), sa.ForeignKey("cost_sets.name"), primary_key=True),
    sa.Column("work_center", sa.String(200), sa.ForeignKey("work_centers.id"), primary_key=True),
    sa.Column("element", sa.String(64), primary_key=True),
    sa.Column("rate", Exact, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(200), nullable=False, unique=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # canonical JSON of the event's content
    sa.Column("statistics", sa.Text, nullable=False),  # JSON {name: decimal string} it added
    sa.Column("reversed_by", sa.String(200)),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

journal_lines = sa.Table(
    "journal_lines",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("entry_no", sa.Integer, nullable=False),
    sa.Column("event", sa.String(200), nullable=False, index=True),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("period", sa.String(7), nullable=False, index=True),
    sa.Column("memo", sa.Text, nullable=False),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("element", sa.String(ELEMENT), nullable=False),
    sa.Column("item", sa.String(200), nullable=False),
    sa.Column("amount", Exact, nullable=False),  # signed: debit positive
)

movements = sa.Table(
    "movements",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event", sa.String(200), nullable=False, index=True),  # the event it belongs to
    sa.Column("cause", sa.String(200), nullable=False),  # the event that made it happen
    sa.Column("item", sa.String(200), nullable=False),
    sa.Column("on_hand", Exact, nullable=False),
    sa.Column("in_process", Exact, nullable=False),
)

balances = sa.Table(
    "balances",
    metadata,
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("element", sa.String(ELEMENT), primary_key=True),
    sa.Column("amount", Exact, nullable=False),
)

period_activity = sa.Table(
    "period_activity",
    metadata,
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("element", sa.String(ELEMENT), primary_key=True),
    sa.Column("amount", Exact, nullable=False),
)

period_statistics = sa.Table(
    "period_statistics",
    metadata,
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("name", sa.String(STATISTIC), primary_key=True),
    sa.Column("amount", Exact, nullable=False),
)

quantities = sa.Table(
    "quantities",
    metadata,
    sa.Column("item", sa.String(200), primary_key=True),
    sa.Column("on_hand", Exact, nullable=False),
    sa.Column("in_process", Exact, nullable=False),
    sa.Column("last_moved", sa.Date),  # the latest date stock on hand moved (None: unknown)
)

period_quantities = sa.Table(
    "period_quantities",
    metadata,
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("item", sa.String(200), primary_key=True),
    sa.Column("on_hand", Exact, nullable=False),  # change of on-hand quantity in the period
)

#: Change per period of the stock in process and of the consumption queued, by item and part
#: (``in_process``, ``queued``, ``queued_in``): a close values them as its period ended.
period_held = sa.Table(
    "period_held",
    metadata,
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("item", sa.String(200), primary_key=True),
    sa.Column("part", sa.String(16), primary_key=True),
    sa.Column("quantity", Exact, nullable=False),
)

shortages = sa.Table(
    "shortages",
    metadata,
    sa.Column("seq", sa.Integer, nullable=False, unique=True),  # queue order
    sa.Column("event", sa.String(200), primary_key=True),
    sa.Column("item", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("quantity", Exact, nullable=False),
    sa.Column("open", Exact, nullable=False),
    sa.Column("into_process", sa.Boolean, nullable=False),
    sa.Column("cleared_by", sa.String(200)),
)

periods = sa.Table(
    "periods",
    metadata,
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("close_event", sa.String(200), nullable=False),
    sa.Column("variances", sa.Text, nullable=False),  # JSON {key: decimal string}
    sa.Column("balances", sa.Text, nullable=False),  # JSON {account: decimal string}
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
)

unsold_conversion = sa.Table(
    "unsold_conversion",
    metadata,
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("element", sa.String(ELEMENT), primary_key=True),
    sa.Column("amount", Exact, nullable=False),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("item", sa.String(200), sa.ForeignKey("items.id"), nullable=False),
    sa.Column("quantity", Exact, nullable=False),
    sa.Column("released", sa.Date, nullable=False),
    sa.Column("release_event", sa.String(200), nullable=False),
    sa.Column("requirements", sa.Text, nullable=False),  # JSON [[component, quantity, flush]]
    sa.Column("completed", Exact, nullable=False),
    sa.Column("scrapped", Exact, nullable=False),
    sa.Column("issued", sa.Text, nullable=False),  # JSON {component: decimal string}
    sa.Column("consumed", sa.Text, nullable=False),
    sa.Column("returned", sa.Text, nullable=False),
    sa.Column("closed_by", sa.String(200)),
)

period_flows = sa.Table(
    "period_flows",
    metadata,
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("item", sa.String(200), primary_key=True),
    sa.Column("flow", sa.String(32), primary_key=True),  # receipt, backflushed, counted, ...
    sa.Column("quantity", Exact, nullable=False),
)

# ---------------------------------------------------------------- close procedure (issue 4)

#: What a close does while backflush exceptions older than its period are open: warn | refuse.
settings.append_column(
    sa.Column("exceptions_at_close", sa.String(16), nullable=False, server_default="warn")
)

#: Periods reopened: the audit trail (the reopen events themselves are in ``events``).
period_reopens = sa.Table(
    "period_reopens",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event", sa.String(200), nullable=False, unique=True),
    sa.Column("period", sa.String(7), nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("close_event", sa.String(200), nullable=False),  # the close it undid
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("reopened_at", sa.DateTime(timezone=True), nullable=False),
)

#: Backflush exceptions resolved by a write-off, with the reason.
exception_write_offs = sa.Table(
    "exception_write_offs",
    metadata,
    sa.Column("event", sa.String(200), primary_key=True),  # the event that queued it
    sa.Column("item", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("written_off_by", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)


# ---------------------------------------------------------------- net realisable value (issue 4)

#: The book's policy for write-downs that recover (ifrs | us-gaap), a column of book_settings
#: added by migration 0003 (declared here, with the rest of this part).
settings.append_column(
    sa.Column("lower_of_cost", sa.String(16), nullable=False, server_default="ifrs")
)

nrv_estimates = sa.Table(
    "nrv_estimates",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),  # posting order
    sa.Column("event", sa.String(200), nullable=False, unique=True),
    sa.Column("item", sa.String(200), sa.ForeignKey("items.id"), nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("unit_value", Exact, nullable=False),
)

nrv_allowances = sa.Table(
    "nrv_allowances",
    metadata,
    sa.Column("item", sa.String(200), primary_key=True),
    sa.Column("amount", Exact, nullable=False),  # signed, as the journal: credit negative
)

nrv_writedowns = sa.Table(
    "nrv_writedowns",
    metadata,
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("item", sa.String(200), primary_key=True),
    sa.Column("quantity", Exact, nullable=False),
    sa.Column("standard", Exact, nullable=False),
    sa.Column("nrv", Exact),
    sa.Column("unit_writedown", Exact, nullable=False),
    sa.Column("allowance", Exact, nullable=False),
    sa.Column("change", Exact, nullable=False),
    sa.Column("carrying", Exact),  # NULL: found before books kept it (worked out again)
)

# Indexes the close (and every write) needs on a book of millions of events, found with
# bench/bench_close.py: the next journal entry number is max(entry_no), and the standards stock
# is valued at come from the last revaluation event; without them both scan whole tables.
sa.Index("ix_journal_lines_entry_no", journal_lines.c.entry_no)
sa.Index("ix_events_type_seq", events.c.type, events.c.seq)

# ---------------------------------------------------------------- reports (issue 5)

#: The journal summed per period, account, element and item: what margin by product and
#: variances by item read without scanning millions of journal lines.
item_activity = sa.Table(
    "item_activity",
    metadata,
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("element", sa.String(ELEMENT), primary_key=True),
    sa.Column("item", sa.String(200), primary_key=True),
    sa.Column("amount", Exact, nullable=False),
)

#: Quantity moved per day and kind of flow (all items): when in its period the work was done.
daily_flows = sa.Table(
    "daily_flows",
    metadata,
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("date", sa.Date, primary_key=True),
    sa.Column("flow", sa.String(32), primary_key=True),
    sa.Column("quantity", Exact, nullable=False),
)

# ---------------------------------------------------------------- reports at scale (issue 5)

#: The journal in figures per period and kind of entry (the first word of the memo), kept as
#: the journal is written: the period report's journal summary without reading every line.
journal_summary = sa.Table(
    "journal_summary",
    metadata,
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("kind", sa.String(200), primary_key=True),
    sa.Column("entries", sa.Integer, nullable=False),
    sa.Column("lines", sa.Integer, nullable=False),
    sa.Column("debits", Exact, nullable=False),
)

# ---------------------------------------------------------------- the HTTP API (issue 6)

#: Who recorded an event: the name of the API token it came with (None: the CLI or an import).
events.append_column(sa.Column("recorded_by", sa.String(200)))

#: API tokens: the secret is shown once and kept only as its SHA-256 (hex).
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),  # recorded_by names it
    sa.Column("role", sa.String(16), nullable=False),  # operator | accountant | viewer | admin
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    #: Who created and who revoked it: an admin token's name, or ``cli:<user>``.
    sa.Column("created_by", sa.String(200)),
    sa.Column("revoked_by", sa.String(200)),
)

#: Responses to writes sent with an ``Idempotency-Key``: a replay gets the same answer. The key
#: is written in the transaction of the events it posted.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("token", sa.String(200), primary_key=True),  # the token's name: keys are its own
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),  # SHA-256 of method, path, body
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("response", sa.Text, nullable=False),  # the JSON body sent
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

#: Signed-in sessions of the web pages: the cookie holds a random session id (kept here only
#: as its SHA-256), never the API token's secret; a session ends at sign-out, at its expiry,
#: or when its token is revoked.
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("token_id", sa.Integer, sa.ForeignKey("api_tokens.id"), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),  # the forms' CSRF token
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
)

# ---------------------------------------------------------------- journal detail (issue 7)

#: How routine events' journal lines are kept: ``event`` | ``day`` | ``period`` (see
#: :class:`backflush.domain.model.JournalDetail`).
settings.append_column(
    sa.Column("journal_detail", sa.String(16), nullable=False, server_default="event")
)
#: A summarised event's own entries and movements (canonical JSON, see ``summaries``); None
#: when they are in ``journal_lines`` and ``movements``.
events.append_column(sa.Column("detail", sa.Text))
#: The summary entry (``journal_lines.entry_no``) a summarised event's lines went to.
events.append_column(sa.Column("summary_entry", sa.Integer, index=True))
