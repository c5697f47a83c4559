"""The book's reports: on screen, as JSON documents, in workbooks, CSV and HTML."""

#: Which sums of the stock moved per period (the most of a large book's load; see
#: ``Store.load``) each report reads, by report kind (``backflush report --what``, the API's
#: ``/reports/{kind}``); one not named here reads them all. A report that reads one it was
#: not given fails (see :class:`backflush.book.Unloaded`): it is never figured from nothing.
PERIOD_SUMS_READ: dict[str, tuple[str, ...]] = {
    "summary": (),
    "trial-balance": (),
    "valuation": (),
    "variances": (),
    "exceptions": (),
    "orders": (),
    "statements": (),
    "nrv": (),
    "variance-analysis": (),
    "margin": ("flows",),  # units sold
    "flags": ("flows", "daily"),  # scrap rates, flow by day
    "throughput": ("moved", "flows", "held_moved"),  # the standard content of stock and sales
}
