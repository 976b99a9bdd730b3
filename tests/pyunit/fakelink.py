"""A stand-in for the Rust ``Link`` (src/service/python/link.rs) that a
``rpycd.remote.Remote`` sends its requests and releases through: it records
them, and answers each request as the test told it to."""

# Handler::from_code accepts rpyc's handler codes, 1 (PING) to 20
# (INSTANCECHECK); Link.sync_request raises ValueError for any other.
HANDLER_CODES = range(1, 21)


class FakeLink:
    def __init__(self, answers=None):
        # handler code -> the answer, or a function of the request's
        # arguments that returns (or raises) it
        self.answers = dict(answers or {})
        self.requests = []  # (handler, args), as sync_request got them
        self.releases = []  # (id pack, count), as release got them
        self.closed = False

    def sync_request(self, handler, args):
        if type(args) is not tuple:
            raise TypeError("Link.sync_request takes its arguments as a tuple")
        if handler not in HANDLER_CODES:
            raise ValueError("unknown handler")
        self.requests.append((handler, args))
        answer = self.answers.get(handler)
        return answer(*args) if callable(answer) else answer

    def release(self, id_pack, count):
        self.releases.append((id_pack, count))

    def close(self):
        self.closed = True

    def handlers(self):
        """The handler codes requested so far, in order."""
        return [handler for handler, _ in self.requests]
