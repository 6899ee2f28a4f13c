"""DriveObserver: what the drive loop tells whoever watches it (traces, metrics, logs), at no cost unused.

The drive loop calls these hooks synchronously, in order, on the event loop's thread. An observer
must be quick, must not raise (an error inside one is logged and ignored, never stops an order),
and must never see a secret: it gets order ids, step names, states, journal events (which hold no
secrets) and the error that ended a step.

One more hook is optional (the loop calls it only on an observer that has it, so observers written
against the five hooks below keep working): ``order_folder(order_id, folder)``, called just before
``order_started`` with the loop's own :class:`~buyer_agent.workflow.FactsFolder` of the order. It
holds every event journaled so far (a resumed order's service, price, pairing and payment) and takes
each new one before the observer's ``event`` is called, so an observer reads the order's facts from
it instead of folding the events again. The observer must not change it, nor keep it past
``order_finished``.
"""

from __future__ import annotations

from typing import Protocol

from buyer_agent.journal import Event

__all__ = ["DriveObserver", "NullObserver"]


class DriveObserver(Protocol):
    """Hooks around driving an order; every method has a no-op default in :class:`NullObserver`."""

    def order_started(self, order_id: str, state: str, *, resumed: bool) -> None:
        """The loop took up ``order_id`` in ``state`` (``resumed``: it had been driven before)."""
        ...

    def step_started(self, order_id: str, step: str, state: str) -> None:
        """A step begins from ``state``.

        Steps are named ``pair``, ``search``, ``choose``, ``order``, ``pay``, ``broadcast``,
        ``prove``, ``execute``, ``confirm``, ``release``, ``dispute``, ``refund``, and so on.
        """
        ...

    def step_finished(self, order_id: str, step: str, state: str, *, error: BaseException | None) -> None:
        """The step ended with the order in ``state``; ``error`` is what stopped it, if anything."""
        ...

    def event(self, event: Event) -> None:
        """An event was appended to the order's journal (intents, results, notes, transitions)."""
        ...

    def order_finished(self, order_id: str, state: str) -> None:
        """The loop let go of ``order_id`` (terminal, waiting, or stopped) in ``state``."""
        ...


class NullObserver:
    """Watches nothing."""

    def order_started(self, order_id: str, state: str, *, resumed: bool) -> None:
        """See :meth:`DriveObserver.order_started`."""

    def step_started(self, order_id: str, step: str, state: str) -> None:
        """See :meth:`DriveObserver.step_started`."""

    def step_finished(self, order_id: str, step: str, state: str, *, error: BaseException | None) -> None:
        """See :meth:`DriveObserver.step_finished`."""

    def event(self, event: Event) -> None:
        """See :meth:`DriveObserver.event`."""

    def order_finished(self, order_id: str, state: str) -> None:
        """See :meth:`DriveObserver.order_finished`."""
