"""A redis-server that requires TLS (client certificates too) and ACL users, for the tests.

Certificates are made at test time with trustme; the ``default`` user is off; an ``admin``
user sets things up, and creditline's user gets exactly :func:`acl_rule`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import trustme
from pydantic import SecretStr

from streams.adapters.redis.client import acl_rule, acl_user, redis_client
from streams.settings import Settings
from tests.redis_nodes import RedisServer, free_port


@dataclass
class SecureRedis:
    """The server, its CA and a client certificate, and the admin's password."""

    server: RedisServer
    ca_file: Path
    cert_file: Path
    key_file: Path
    admin_password: str

    @classmethod
    def start(cls, directory: Path) -> SecureRedis:
        """Make certificates, start the server (TLS only, default user off)."""
        ca = trustme.CA()
        server_cert = ca.issue_cert("127.0.0.1", "localhost")
        client_cert = ca.issue_cert("creditline-client")
        certs = directory / "certs"
        certs.mkdir(parents=True)
        files = {
            "ca.pem": ca.cert_pem,
            "server.pem": server_cert.cert_chain_pems[0],
            "server.key": server_cert.private_key_pem,
            "client.pem": client_cert.cert_chain_pems[0],
            "client.key": client_cert.private_key_pem,
        }
        for name, blob in files.items():
            blob.write_to_path(str(certs / name))
        admin_password = secrets.token_urlsafe(18)
        port = free_port()
        server = RedisServer(
            directory / "data",
            port,
            [
                "--port",
                "0",  # no plaintext listener at all
                "--tls-port",
                str(port),
                "--tls-cert-file",
                str(certs / "server.pem"),
                "--tls-key-file",
                str(certs / "server.key"),
                "--tls-ca-cert-file",
                str(certs / "ca.pem"),
                "--tls-auth-clients",
                "yes",
                "--user",
                "admin",
                "on",
                f">{admin_password}",
                "~*",
                "&*",
                "+@all",
                "--user",
                "default",
                "off",
                "--save",
                "",
            ],
        )
        server.start()
        return cls(
            server, certs / "ca.pem", certs / "client.pem", certs / "client.key", admin_password
        )

    def url(self, user: str, password: str, scheme: str = "rediss") -> str:
        """A URL to this server as ``user``."""
        return f"{scheme}://{user}:{password}@127.0.0.1:{self.server.port}/0"

    def settings(self, base: Settings, user: str, password: str) -> Settings:
        """``base`` pointed at this server as ``user``, with the CA and client certificate."""
        return base.model_copy(
            update={
                "redis_url": SecretStr(self.url(user, password)),
                "redis_cluster": False,
                "redis_tls_ca_file": self.ca_file,
                "redis_tls_cert_file": self.cert_file,
                "redis_tls_key_file": self.key_file,
            }
        )

    def admin(self, base: Settings) -> Settings:
        """``base`` as the admin user (for setup, checks and cleanup)."""
        return self.settings(base, "admin", self.admin_password)

    async def grant(self, settings: Settings, password: str) -> None:
        """Create creditline's user for ``settings`` with exactly the rule the code produces."""
        client = redis_client(self.admin(settings))
        try:
            await client.execute_command(
                "ACL", "SETUSER", acl_user(settings), *acl_rule(settings), f">{password}"
            )
            await client.execute_command("ACL", "LOG", "RESET")
        finally:
            await client.aclose()

    async def acl_log(self, base: Settings) -> list[object]:
        """The server's ACL LOG: every command or key refused since the last grant."""
        client = redis_client(self.admin(base))
        try:
            entries: list[object] = await client.execute_command("ACL", "LOG")
            return entries
        finally:
            await client.aclose()

    def stop(self) -> None:
        """Stop the server."""
        self.server.stop()
