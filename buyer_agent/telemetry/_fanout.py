"""Observers: many :class:`~buyer_agent.workflow.DriveObserver` as one, each kept from stopping an order."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from buyer_agent.journal import Event, OrderStore
from buyer_agent.workflow import DriveObserver, FactsFolder

__all__ = ["Observers"]

log = logging.getLogger(__name__)


class Observers:
    """Calls every observer's hook in turn; one that raises is logged and the others still run."""

    def __init__(self, *observers: DriveObserver) -> None:
        self.observers: tuple[DriveObserver, ...] = observers

    def _each(self, call: Callable[[DriveObserver], None]) -> None:
        for observer in self.observers:
            try:
                call(observer)
            except Exception:  # an observer must never stop an order
                log.warning("observer %s failed", type(observer).__name__, exc_info=True)

    def order_started(self, order_id: str, state: str, *, resumed: bool) -> None:
        """See :meth:`DriveObserver.order_started`."""
        self._each(lambda o: o.order_started(order_id, state, resumed=resumed))

    def step_started(self, order_id: str, step: str, state: str) -> None:
        """See :meth:`DriveObserver.step_started`."""
        self._each(lambda o: o.step_started(order_id, step, state))

    def step_finished(self, order_id: str, step: str, state: str, *, error: BaseException | None) -> None:
        """See :meth:`DriveObserver.step_finished`."""
        self._each(lambda o: o.step_finished(order_id, step, state, error=error))

    def event(self, event: Event) -> None:
        """See :meth:`DriveObserver.event`."""
        self._each(lambda o: o.event(event))

    def order_finished(self, order_id: str, state: str) -> None:
        """See :meth:`DriveObserver.order_finished`."""
        self._each(lambda o: o.order_finished(order_id, state))

    def order_folder(self, order_id: str, folder: FactsFolder) -> None:
        """The optional hook, for the observers that have it (see :class:`DriveObserver`)."""
        self._optional("order_folder", order_id, folder)

    def watch_store(self, store: OrderStore) -> None:
        """Lend the agent's store to the observers that read one (the metrics' ledger gauges)."""
        self._optional("watch_store", store)

    def forget_store(self, store: OrderStore) -> None:
        """The agent is closing ``store``."""
        self._optional("forget_store", store)

    def _optional(self, hook: str, *args: Any) -> None:
        for observer in self.observers:
            call = getattr(observer, hook, None)
            if call is None:
                continue
            try:
                call(*args)
            except Exception:  # an observer must never stop an order
                log.warning("observer %s failed", type(observer).__name__, exc_info=True)
