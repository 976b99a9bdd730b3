"""rpycd's Python side: the object space the classic service (rpyc-classic)
and rpyc-serve run on. The binaries embed these files and import them as
this package (src/service/python/embedded.rs); tests/pyunit imports them from
src/service directly.

- ``classic``: what Rust looks up, and what a forking server does before
  it forks.
- ``service``: ``SlaveService``, the classic root.
- ``remote``: the client's side of a connection, as server code sees it.
- ``handlers``: the client's requests that run its code, answered.
- ``netref``: proxies for the client's objects.
- ``introspect``: id packs, method lists, and the proxy classes made of them.
- ``vinegar``: exceptions to and from the client.
- ``consts``: rpyc's handler and exception codes.
- ``serve``: what rpyc-serve adds for any rpyc ``Service`` class.
"""
