"""Stop words per Snowball language: the function words that carry no topic.

English only for now (other languages index every word; BM25's IDF weighs the
common ones down anyway). Left out on purpose, because agents ask about them: month
and weekday names ("may", "march", "sunday"), numbers, and words that are also
names ("will", "bill", "may", "june", "august").
"""

from __future__ import annotations

__all__ = ["STOP_WORDS"]

_ENGLISH = """
a about above after again against all am an and any are aren as at be because been
before being below between both but by could couldn did didn do does doesn doing don
down during each few for from further had hadn has hasn have haven having he her here
hers herself him himself his how i if in into is isn it its itself just ll me more
most mustn my myself no nor not now of off on once only or other our ours ourselves
out over own re s same shan she should shouldn so some such t than that the their
theirs them themselves then there these they this those through to too under until
up very ve was wasn we were weren what when where which while who whom why with won
would wouldn y you your yours yourself yourselves d m o im ive id youre thats dont
whats hows
"""

STOP_WORDS: dict[str, frozenset[str]] = {"english": frozenset(_ENGLISH.split())}
