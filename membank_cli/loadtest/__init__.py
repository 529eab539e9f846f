"""``membank loadtest``: Locust scenarios run headless, judged against SLOs.

``hosts`` decides which targets may be loaded, ``runner`` runs Locust as a
subprocess with a live view, ``report`` reads its CSVs into a summary, ``slo``
judges the summary, ``command`` is the Typer command that ties them together.
"""
