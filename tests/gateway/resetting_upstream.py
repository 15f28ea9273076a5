"""An upstream that accepts every TCP connection and resets it at once (SO_LINGER 0).

Run as a real process by the tests: the gateway's new connection is closed under it
between connect and write.
"""

from __future__ import annotations

import argparse
import socket
import struct


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", args.port))
        listener.listen(1024)
        while True:
            conn, _ = listener.accept()
            # Linger 0: close() sends RST instead of FIN.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()


if __name__ == "__main__":
    main()
