"""The exported surface changes only on purpose."""

from __future__ import annotations

import acytoo_raw
from acytoo_raw import AcytooError


def test_exported_names_are_pinned() -> None:
    assert sorted(acytoo_raw.__all__) == sorted(
        [
            "DEFAULT_TIMEOUT",
            "Acytoo",
            "AcytooError",
            "ConnectError",
            "ConnectTimeout",
            "HTTPStatusError",
            "LocalProtocolError",
            "ProxyError",
            "ReadTimeout",
            "RemoteProtocolError",
            "Response",
            "TLSError",
            "Timeout",
            "TimeoutException",
            "TotalTimeout",
            "WriteTimeout",
            "open_stream",
            "stream_bytes",
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
    assert len(errors) == 12
    assert all(issubclass(error, AcytooError) for error in errors)
    assert issubclass(acytoo_raw.LocalProtocolError, ValueError)


def test_package_is_typed() -> None:
    from importlib.resources import files

    assert files("acytoo_raw").joinpath("py.typed").is_file()
