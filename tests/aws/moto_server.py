"""moto's server mode on loopback, for the AWS platform's tests."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


@dataclass
class Moto:
    """A running ThreadedMotoServer and boto3 clients pointed at it."""

    server: ThreadedMotoServer
    url: str

    @classmethod
    def start(cls) -> Moto:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        moto = cls(server, f"http://{host}:{port}")
        moto.configure()
        return moto

    def configure(self) -> None:
        # moto runs no code; with Docker off, Invoke echoes its payload instead of failing.
        httpx.post(f"{self.url}/moto-api/config", json={"lambda": {"use_docker": False}})

    def stop(self) -> None:
        self.server.stop()

    def reset(self) -> None:
        httpx.post(f"{self.url}/moto-api/reset")

    def client(self, service: str, region: str = REGION) -> Any:
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
        )
