#!/usr/bin/env python3
"""rpyc 6.0.2's registry server, bound to the loopback only.

rpyc_registry binds every address and has no switch for the host; the
benchmark must listen on 127.0.0.1 alone, so it runs the same server classes
(UDPRegistryServer, TCPRegistryServer) as rpyc_registry does, quietly.
"""

import argparse

from rpyc.lib import setup_logger
from rpyc.utils.registry import TCPRegistryServer, UDPRegistryServer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["UDP", "TCP"], default="UDP")
    args = parser.parse_args()
    server_class = UDPRegistryServer if args.mode == "UDP" else TCPRegistryServer
    server = server_class(host="127.0.0.1", port=args.port)
    setup_logger(quiet=True)
    server.start()


if __name__ == "__main__":
    main()
