"""A TCP proxy on 127.0.0.1 that makes a real server hang, until released.

While stalled it accepts connections and answers nothing (the client sees its own
timeout, as with an overloaded S3 endpoint); once released, new connections are
forwarded to the target byte for byte.
"""

from __future__ import annotations

import socket
import socketserver
import threading


class StallingProxy:
    def __init__(self, target_host: str, target_port: int):
        self.released = threading.Event()
        self.stalled_connections = 0
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                if not proxy.released.is_set():
                    proxy.stalled_connections += 1
                    while self.request.recv(65536):  # read and ignore until the client gives up
                        pass
                    return
                with socket.create_connection((target_host, target_port), timeout=30) as upstream:
                    back = threading.Thread(target=_pump, args=(upstream, self.request), daemon=True)
                    back.start()
                    _pump(self.request, upstream)
                    back.join()

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def __enter__(self) -> "StallingProxy":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def release(self) -> None:
        self.released.set()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass
