"""uvicorn's HTTP/1.1 protocol (h11) with a deadline for a new connection's request headers.
uvicorn closes idle keep-alive connections but waits for ever on a connection that has sent
part of a request and nothing since ("slowloris"): enough of those would hold every socket the
process may open. Here a connection whose first request is not complete within
HEADER_TIMEOUT_S is closed."""
from __future__ import annotations

from uvicorn.protocols.http.h11_impl import H11Protocol


class HeaderDeadlineProtocol(H11Protocol):
    HEADER_TIMEOUT_S = 10.0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._header_deadline = self.loop.call_later(self.HEADER_TIMEOUT_S, self._headers_late)

    def _headers_late(self) -> None:
        if self.cycle is None and not self.transport.is_closing():  # no request has begun
            self.transport.close()

    def connection_lost(self, exc) -> None:
        self._header_deadline.cancel()
        super().connection_lost(exc)
