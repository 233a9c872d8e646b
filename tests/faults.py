"""A TCP proxy between the service and PostgreSQL that fails the way networks and servers do.

forward    pass bytes both ways (the healthy state)
refuse     close every connection and refuse new ones (a server that is down)
blackhole  accept and read, never forward or answer (a network path that drops packets)
delay      forward every chunk after a pause (an overloaded server)
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from enum import StrEnum


class Mode(StrEnum):
    FORWARD = "forward"
    REFUSE = "refuse"
    BLACKHOLE = "blackhole"
    DELAY = "delay"


class TcpProxy:
    def __init__(self, upstream: tuple[str, int], *, delay_seconds: float = 4.0) -> None:
        self.upstream = upstream
        self.delay_seconds = delay_seconds
        self.mode = Mode.FORWARD
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._listener.listen(256)
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def set(self, mode: Mode) -> None:
        self.mode = mode
        if mode == Mode.REFUSE:
            self._close_all()

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self._listener.close()
        self._close_all()

    def _close_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.mode == Mode.REFUSE:
                # a closed port answers RST at once; closing with SO_LINGER 0 does the same
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                client.close()
                continue
            if self.mode == Mode.BLACKHOLE:
                self._track(client)
                threading.Thread(target=self._swallow, args=(client,), daemon=True).start()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            self._track(client, server)
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    def _track(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._sockets.update(sockets)

    def _swallow(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while client.recv(65536):
                pass

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                while self.mode == Mode.BLACKHOLE and not self._stopped:
                    time.sleep(0.05)  # held, never delivered while the hole lasts
                if self.mode == Mode.DELAY:
                    time.sleep(self.delay_seconds)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
