"""The gunicorn worker class of the model API: uvicorn's, whose recycling (`max_requests`) loses no request.

Uvicorn ends a worker that has answered its `max_requests` at its next tick by closing every keep-alive connection
idle at that instant. A client that has just sent its next request on one finds it reset, the request unread: lost,
though the worker finished everything it had read. Here the worker's answers from its last on say
`Connection: close` (ClosingWhenRecycled), and before it ends it stops accepting connections and waits, up to the
keep-alive timeout, for its clients to send on theirs one last time (answered with that header) or leave them idle
until uvicorn's keep-alive timer closes them, as it would in any worker.
"""

from __future__ import annotations

import asyncio
import socket
import sys

from gunicorn.arbiter import Arbiter
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from model_api.middleware import ClosingWhenRecycled

DRAIN_POLL_SECONDS = 0.1  # uvicorn's own tick


class DrainingServer(Server):
    """A uvicorn server that, ended by its `max_requests`, lets its clients close their connections first."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        limit = self.config.limit_max_requests
        if not self.should_exit and limit is not None and self.server_state.total_requests >= limit:
            for server in self.servers:
                server.close()  # new connections go to the other workers (or wait for this one's successor)
            deadline = asyncio.get_running_loop().time() + self.config.timeout_keep_alive
            while self.server_state.connections and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(DRAIN_POLL_SECONDS)
        await super().shutdown(sockets)


class RecyclingUvicornWorker(UvicornWorker):
    """A uvicorn worker that, recycled after `max_requests` (plus its jitter), drains its connections first."""

    def load_wsgi(self) -> None:
        super().load_wsgi()
        if self.cfg.max_requests > 0:  # self.max_requests is this worker's own draw of the jitter
            self.wsgi = ClosingWhenRecycled(self.wsgi, self.max_requests)

    async def _serve(self) -> None:  # uvicorn_worker's, with the draining server
        self.config.app = self.wsgi
        server = DrainingServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
