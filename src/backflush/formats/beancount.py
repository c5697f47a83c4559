"""The journal as a beancount ledger (plain-text accounting), for bean-check, fava and friends.

Each backflush account key maps to a beancount account of the right type (inventories are
assets, payables liabilities, sales income, cost of sales and variances expenses); a
conversion element or a prorated variance becomes a sub-account. Each journal entry becomes a
transaction dated as the entry, with its number, the event id and the item of each line as
metadata, so a figure in fava leads back to the entry (``explain --entry N``) and the event
that made it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from backflush.domain.model import Account, Entry, Settings
from backflush.reports.document import money

ROOTS: dict[Account, str] = {
    Account.RAW_IN_PROCESS: "Assets:Inventory:RawInProcess",
    Account.MATERIALS: "Assets:Inventory:Materials",
    Account.WORK_IN_PROCESS: "Assets:Inventory:WorkInProcess",
    Account.FINISHED_GOODS: "Assets:Inventory:FinishedGoods",
    Account.NRV_ALLOWANCE: "Assets:Inventory:NrvAllowance",
    Account.ACCOUNTS_RECEIVABLE: "Assets:AccountsReceivable",
    Account.ACCOUNTS_PAYABLE: "Liabilities:AccountsPayable",
    Account.ACCRUED_CONVERSION: "Liabilities:AccruedConversion",
    Account.SALES: "Income:Sales",
    Account.COGS: "Expenses:CostOfGoodsSold",
    Account.NRV_WRITEDOWN: "Expenses:NrvWritedown",
    Account.CONVERSION_CONTROL: "Expenses:Conversion:Control",
    Account.CONVERSION_ALLOCATED: "Expenses:Conversion:Allocated",
    Account.PURCHASE_PRICE_VARIANCE: "Expenses:Variances:PurchasePrice",
    Account.MATERIAL_USAGE_VARIANCE: "Expenses:Variances:MaterialUsage",
    Account.CONVERSION_VARIANCE: "Expenses:Variances:Conversion",
    Account.CONVERSION_SPENDING_VARIANCE: "Expenses:Variances:ConversionSpending",
    Account.CONVERSION_EFFICIENCY_VARIANCE: "Expenses:Variances:ConversionEfficiency",
    Account.REVALUATION_VARIANCE: "Expenses:Variances:Revaluation",
    Account.INVENTORY_ADJUSTMENT: "Expenses:Variances:InventoryAdjustment",
    Account.ROUNDING_VARIANCE: "Expenses:Variances:Rounding",
}


def component(text: str) -> str:
    """``text`` as one beancount account component: a capital first, then letters, digits
    and dashes ("labor" -> "Labor", "variance:conversion:labor" -> "Variance-Conversion-
    Labor")."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", text) if w]
    joined = "-".join(w[:1].upper() + w[1:] for w in words) or "X"
    return joined if joined[0].isalpha() else "X" + joined


def account_name(account: Account, element: str = "") -> str:
    root = ROOTS[account]
    return f"{root}:{component(element)}" if element else root


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ledger(settings: Settings, numbered: Iterable[tuple[int, Entry]]) -> str:
    """The whole journal, its entries ``numbered`` (number, entry), as a beancount file:
    options, one ``open`` per account (on the date of its first line), one transaction per
    entry."""
    numbered = list(numbered)
    opened: dict[str, str] = {}  # account -> the date of its first line (entries are in
    for _, entry in numbered:  # posting order, which is not always date order)
        day = entry.date.isoformat()
        for line in entry.lines:
            name = account_name(line.account, line.element)
            opened[name] = min(opened.get(name, day), day)
    currency = settings.currency
    out = [
        f"option {_quoted('title')} {_quoted(settings.name)}",
        f"option {_quoted('operating_currency')} {_quoted(currency)}",
        "",
    ]
    out += [f"{day} open {name} {currency}" for name, day in sorted(opened.items())]
    for number, entry in numbered:
        out += ["", f"{entry.date.isoformat()} * {_quoted(entry.memo)}"]
        out.append(f"  entry: {number}")
        out.append(f"  event: {_quoted(entry.event)}")
        for line in entry.lines:
            amount = money(line.amount, currency)
            out.append(f"  {account_name(line.account, line.element)}  {amount} {currency}")
            if line.item:
                out.append(f"    item: {_quoted(line.item)}")
    return "\n".join(out) + "\n"
