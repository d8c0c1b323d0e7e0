"""Throw-away TLS material for one run: a trustme CA and a server certificate for 127.0.0.1."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certs:
    ca_file: str
    cert_file: str
    key_file: str


def generate(directory: Path) -> Certs:
    import trustme  # bench extra; imported here so --help works without it

    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    certs = Certs(
        ca_file=str(directory / "ca.pem"),
        cert_file=str(directory / "server.pem"),
        key_file=str(directory / "server.key"),
    )
    ca.cert_pem.write_to_path(certs.ca_file)
    server.cert_chain_pems[0].write_to_path(certs.cert_file)
    for extra in server.cert_chain_pems[1:]:
        extra.write_to_path(certs.cert_file, append=True)
    server.private_key_pem.write_to_path(certs.key_file)
    return certs
