"""Whether each source of the poll could be read, kept where every worker sees it.

One code path for every runner of the poll (the Functions timer, the local runtime,
``run --until-idle``): ``Intake.poll`` records each source's outcome in the journal here, and
logs a WARNING naming the source and the reason when one failed. ``status`` and
``doctor`` read the journal's record back (``source_health``), so a sweep refused in Azure is
visible from an operator's terminal too.
"""

import logging
from collections.abc import Iterable

from remediation.domain.errors import RemediationError
from remediation.domain.sources import Source, SourceHealth
from remediation.logsafety import redact
from remediation.service.ports import Clock, Journal

log = logging.getLogger(__name__)


async def record_outcome(journal: Journal, clock: Clock, source: Source,
                         failure: str | None) -> str | None:
    """Keep how reading ``source`` went (``failure``: the reason, None for a success); the
    reason passes ``redact`` first, as everything journaled does. A journal that cannot take
    it fails nothing else: the trouble is returned, for the poll's report."""
    try:
        await journal.record_source(source.value, clock.now(),
                                    None if failure is None else redact(failure))
    except Exception as error:
        if isinstance(error, RemediationError):
            why = error.reason
        else:
            log.error("poll: unexpected %s", type(error).__name__, exc_info=error)
            why = f"unexpected {type(error).__name__}"
        return f"journal: could not record the outcome of source {source.label}: {why}"
    return None


async def source_health(journal: Journal, expected: Iterable[Source]) -> list[SourceHealth]:
    """The record of each ``expected`` source (an empty one if never recorded), in that
    order, then any other source on record."""
    recorded = {health.source: health for health in await journal.source_health()}
    wanted = [source.value for source in expected]
    return [*(recorded.get(name, SourceHealth(name)) for name in wanted),
            *(health for name, health in sorted(recorded.items()) if name not in wanted)]

