"""rpyc 6's decorated-service behaviour (its tests/test_custom_service.py,
served over TCP instead of connect_thread), against both servers."""

import pytest


@pytest.fixture
def served(serve):
    return serve("decorated:DecoratedService")


def test_distance_and_exposed_forms(served):
    with served.connect() as conn:
        root = conn.root
        assert root.distance((2, 7), (5, 11)) == 5
        root.exposed_distance
        root.getlist
        root.exposed_getlist
        assert [y * 2 for y in root.getlist()] == [2, 4, 6]


def test_metaclass_instance(served):
    with served.connect() as conn:
        obj = conn.root.getmeta()
        assert "WithMeta" in repr(obj)


def test_isinstance_across_the_connection(served):
    with served.connect() as conn:
        remote_list = conn.root.getlist()
        assert conn.root.instance(remote_list, list)
        assert not conn.root.instance(remote_list, dict)
        assert conn.root.instance(3, int)


def test_decorated_names(served):
    with served.connect() as conn:
        assert conn.root.get_decorated() == "decorated"
        assert conn.root.exposed_get_decorated() == "decorated"
        pair = conn.root.Pair(1, 2)
        assert pair.foo() == 3
        with pytest.raises(AttributeError):
            conn.root.get_decorated_prefix()


def test_another_exposed_prefix(serve):
    served = serve("decorated:DecoratedService", {"exposed_prefix": "prefix_"})
    with served.connect() as conn:
        assert conn.root.get_decorated_prefix() == "decorated_prefix"
        with pytest.raises(AttributeError):
            conn.root.get_decorated()


def test_before_closed_reaches_the_service(served):
    with served.connect() as probe:
        before = probe.root.closings()
    conn = served.connect(before_closed=lambda root: root.on_about_to_close(),
                          close_catchall=False)
    conn.root.getlist()
    conn.close()
    with served.connect() as probe:
        assert probe.root.closings() == before + 1
