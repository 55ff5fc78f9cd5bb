"""The transports, by `destination.transport`: a new one is a module with a class
that satisfies `base.Transport`, and one line in `TRANSPORTS`."""

from __future__ import annotations

from collections.abc import Callable

from connector.config import DestinationConfig
from connector.config import Transport as TransportKind
from connector.errors import ConfigError
from connector.transports.base import Transport
from connector.transports.events_api import EventsApi
from connector.transports.pixel import Pixel
from connector.transports.rudderstack import RudderStack

TRANSPORTS: dict[TransportKind, Callable[[DestinationConfig], Transport]] = {
    TransportKind.EVENTS_API: EventsApi,
    TransportKind.PIXEL: Pixel,
    TransportKind.RUDDERSTACK_PIXEL: RudderStack,
}


def transport_for(destination: DestinationConfig) -> Transport:
    """The transport `destination` names; refused (before anything is read) when it is
    not built yet."""
    build = TRANSPORTS.get(destination.transport)
    if build is None:
        raise ConfigError(
            f"destination.transport: {destination.transport} is not implemented yet; "
            "use events_api (nothing was sent)"
        )
    return build(destination)
