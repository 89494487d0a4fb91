"""Stream frames built by the service are byte for byte what wsproto builds."""

import pytest


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_text_frames_match_what_wsproto_builds(size):
    from wsproto.connection import Connection, ConnectionType
    from wsproto.events import TextMessage

    from app.routes.stream import text_frame

    text = ("é" * size)[:size] if size % 2 else "x" * size
    assert text_frame(text) == Connection(ConnectionType.SERVER).send(TextMessage(data=text))
