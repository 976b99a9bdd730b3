"""rpyc's own attribute-access test service (tests/test_attr_access.py in
rpyc's repository): what each protocol configuration lets a client reach."""
import rpyc


class MyClass(object):
    def __add__(self, other):
        return self.foo() + str(other)

    def foo(self):
        return "foo"

    def bar(self):
        return "bar"

    def spam(self):
        return "spam"

    def _privy(self):
        return "privy"

    def exposed_foobar(self):
        return "Fee Fie Foe Foo"


class MyService(rpyc.Service):
    exposed_MyClass = MyClass

    def exposed_get_one(self):
        return rpyc.restricted(MyClass(), ["exposed_foobar", "__add__", "_privy", "foo", "bar"])


class Settable(rpyc.Service):
    """A service whose objects a client may change, when allowed."""

    class Box(object):
        def __init__(self):
            self.exposed_value = 1
            self.public = 2

    def exposed_box(self):
        return self.Box()


class Picklable(rpyc.Service):
    def exposed_data(self):
        return {"a": [1, 2, 3]}
