"""A real S3-protocol server on loopback (moto's server mode), as a pytest plugin: ``s3_store``
gives its endpoint URL and a boto3 client; credentials are test values in the environment."""

from __future__ import annotations

import socket

import pytest

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "vidscope-test", "AWS_SECRET_ACCESS_KEY": "vidscope-test-secret",
               "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_store():
    """``(endpoint, client)`` of a moto S3 server for the whole run."""
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as env:
        for key, value in CREDENTIALS.items():
            env.setenv(key, value)
        yield endpoint, boto3.client("s3", endpoint_url=endpoint)
    server.stop()
