"""`tone serve`'s uvicorn configuration: the fast HTTP parser and event loop, and the access log setting."""

from serving.server import uvicorn_config
from tone.settings import load_settings


def test_uvicorn_runs_on_httptools_and_uvloop():
    config = uvicorn_config(load_settings())
    config.load()
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"  # not h11's pure-Python parser
    loop = config.get_loop_factory()()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


def test_the_access_log_follows_its_setting():
    assert uvicorn_config(load_settings()).access_log is False
    assert uvicorn_config(load_settings(api_access_log=True)).access_log is True
