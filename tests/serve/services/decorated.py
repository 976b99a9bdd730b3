"""A service in the style of rpyc 6's own tests/test_custom_service.py:
rpyc's @service/@exposed decorators, a metaclass instance, isinstance
across the connection, and a second exposed prefix."""
import math

import rpyc


class Meta(type):
    def spam(cls):
        return cls.__name__ * 5


class WithMeta(metaclass=Meta):
    pass


CLOSING = []


@rpyc.service
class DecoratedService(rpyc.Service):
    def exposed_distance(self, p1, p2):
        (x1, y1), (x2, y2) = p1, p2
        return math.sqrt((x2 - x1) ** 2 + (y2 - y1) ** 2)

    def exposed_getlist(self):
        return [1, 2, 3]

    def exposed_getmeta(self):
        return WithMeta()

    def exposed_instance(self, inst, cls):
        return isinstance(inst, cls)

    def exposed_on_about_to_close(self):
        CLOSING.append(True)

    def exposed_closings(self):
        return len(CLOSING)

    @rpyc.exposed
    class Pair(object):
        def __init__(self, a, b):
            self.a = a
            self.b = b

        @rpyc.exposed
        def foo(self):
            return self.a + self.b

    @rpyc.exposed
    def get_decorated(self):
        return "decorated"

    @rpyc.exposed("prefix_")
    def get_decorated_prefix(self):
        return "decorated_prefix"
