"""The exported surface changes only on purpose."""

from __future__ import annotations

import acytoo_raw
from acytoo_raw import AcytooError


def test_exported_names_are_pinned() -> None:
    assert sorted(acytoo_raw.__all__) == sorted(
        [
            "DEFAULT_LIMITS",
            "DEFAULT_TIMEOUT",
            "Acytoo",
            "AcytooError",
            "ChatStream",
            "Client",
            "ConnectError",
            "ConnectTimeout",
            "HTTPStatusError",
            "Limits",
            "LocalProtocolError",
            "OpenAIChat",
            "PoolTimeout",
            "ProxyError",
            "ReadTimeout",
            "RemoteProtocolError",
            "Response",
            "ServerSentEvent",
            "StreamError",
            "TLSError",
            "Timeout",
            "TimeoutException",
            "Timings",
            "TotalTimeout",
            "WriteTimeout",
            "open_stream",
            "stream_bytes",
            "stream_events",
            "stream_text",
        ]
    )
    for name in acytoo_raw.__all__:
        assert hasattr(acytoo_raw, name)


def test_every_error_derives_from_acytoo_error() -> None:
    errors = [
        getattr(acytoo_raw, name)
        for name in acytoo_raw.__all__
        if isinstance(getattr(acytoo_raw, name), type)
        and issubclass(getattr(acytoo_raw, name), BaseException)
    ]
    assert len(errors) == 14
    assert all(issubclass(error, AcytooError) for error in errors)
    assert issubclass(acytoo_raw.LocalProtocolError, ValueError)


def test_package_is_typed() -> None:
    from importlib.resources import files

    assert files("acytoo_raw").joinpath("py.typed").is_file()


def _modules_after(code: str) -> set[str]:
    import json
    import subprocess
    import sys

    script = f"import sys\n{code}\nimport json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True)
    return set(json.loads(out.stdout))


def test_import_loads_only_errors_and_settings() -> None:
    loaded = _modules_after("import acytoo_raw")
    assert "acytoo_raw._exceptions" in loaded
    for heavy in ("acytoo_raw._client", "acytoo_raw.server", "h11", "anyio"):
        assert heavy not in loaded, heavy


def test_first_use_loads_the_engine_but_not_what_only_some_calls_need() -> None:
    loaded = _modules_after(
        "import acytoo_raw; acytoo_raw.Client; acytoo_raw.Acytoo; acytoo_raw.OpenAIChat"
    )
    assert "acytoo_raw._client" in loaded
    for rare in (
        "acytoo_raw._socks",  # SOCKS proxies only
        "idna",  # non-ASCII host names only
        "anyio.from_thread",  # blocking create_completion only
        "acytoo_raw.server",
        "acytoo_raw.__main__",
    ):
        assert rare not in loaded, rare
