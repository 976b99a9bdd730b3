"""rpyc's own ThreadedServer serving a service class, as the reference
the rpyc-serve tests compare with: prints the port, then serves.

    py_serve.py MODULE:CLASS DIR [KEY=LITERAL ...] [ssl:KEYFILE,CERTFILE,CAFILE]
                [auth:MODULE:CALLABLE]

With both ssl: and auth:, the callable is given what rpyc's SSLAuthenticator
returns (the TLS socket), as rpyc-serve's --authenticator is after its TLS.
"""
import ast
import importlib
import logging
import sys

from rpyc.utils.server import ThreadedServer


def main():
    spec, path, *items = sys.argv[1:]
    sys.path.insert(0, path)
    module, _, name = spec.partition(":")
    cls = getattr(importlib.import_module(module), name)
    config = {}
    authenticator = None
    callable_ = None
    for item in items:
        if item.startswith("auth:"):
            module_name, _, attr = item[5:].partition(":")
            callable_ = getattr(importlib.import_module(module_name), attr)
            continue
        if item.startswith("ssl:"):
            # ssl:KEY,CERT,CA: rpyc's SSLAuthenticator, as rpyc_classic sets it up
            from rpyc.utils.authenticators import SSLAuthenticator
            key, cert, ca = item[4:].split(",")
            authenticator = SSLAuthenticator(key, cert, ca_certs=ca)
            continue
        key, _, value = item.partition("=")
        config[key] = ast.literal_eval(value)
    if callable_ is not None:
        if authenticator is None:
            authenticator = callable_
        else:
            tls = authenticator

            def authenticator(sock):
                wrapped, _ = tls(sock)
                return callable_(wrapped)
    # what rpyc_classic shows by default (its -q hides it): the server's
    # info lines, such as an authenticator's refusals
    logging.basicConfig(level=logging.INFO)
    server = ThreadedServer(cls, hostname="127.0.0.1", port=0, protocol_config=config,
                            authenticator=authenticator)
    # __init__ binds, start() listens: listen first (start() then skips
    # it, as rpyc's own tests do), so a client told the port is not refused
    server._listen()
    print(f"PORT {server.port}", flush=True)
    server.start()


if __name__ == "__main__":
    main()
