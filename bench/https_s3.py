"""moto's S3 over TLS on 127.0.0.1, as S3 is only ever reached from Lambda: over HTTPS.

The function's own signed GETs (functions/inference/s3get.py) verify the server with Python's default context,
which trusts the file named by SSL_CERT_FILE when it is set (``ssl.get_default_verify_paths()``), the system
bundle otherwise; on Lambda, Amazon Linux's bundle. So a function that fetches from this server is given, through
SSL_CERT_FILE, the machine's whole CA bundle with a test CA (made by trustme) added to it: it parses a bundle of
the size a runtime's is, and verifies a real chain.
"""

from __future__ import annotations

import functools
import ssl
import threading
from pathlib import Path
from typing import Any

import trustme
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from functions.inference.s3get import S3GetClient, environment_client
from modelrail.local.aws import CREDENTIALS, REGION


class HttpsS3:
    """moto's S3 over TLS on 127.0.0.1 (an ephemeral port), presenting ``cert``. It serves moto's in-process
    backend, so it holds whatever was uploaded through any other moto server of this process.

    ``connections``: the TCP connections it accepted, each a TLS handshake (which runs in accept) whether it succeeded
    or the client gave up on the certificate; s3get makes one connection per GET, so this counts GETs tried."""

    def __init__(self, cert: trustme.LeafCert) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        app = DomainDispatcherApplication(create_backend_app)
        self.server = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler, ssl_context=context
        )
        self.connections = 0
        accept = self.server.get_request

        def counted() -> Any:
            self.connections += 1
            return accept()

        self.server.get_request = counted  # type: ignore[method-assign]
        self.endpoint_url = f"https://127.0.0.1:{self.server.server_port}"
        # Polled every 50 ms (not socketserver's 500) so that stopping it takes no noticeable time.
        serve = functools.partial(self.server.serve_forever, poll_interval=0.05)
        self._thread = threading.Thread(target=serve, name="https-s3", daemon=True)
        self._thread.start()

    def environment(self) -> dict[str, str]:
        """What the function's environment holds on Lambda (credentials, region), with this S3 as its endpoint."""
        return {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_REGION": REGION, **CREDENTIALS}

    def client(self) -> S3GetClient:
        """The function's own client for this server, as it makes one from its environment."""
        client = environment_client(self.environment())
        assert client is not None
        return client

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()

    def __enter__(self) -> HttpsS3:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def bundle_with(ca: trustme.CA, path: Path) -> Path:
    """The machine's default CA bundle with ``ca`` appended, written to ``path``: what SSL_CERT_FILE names."""
    paths = ssl.get_default_verify_paths()
    system = next((Path(p) for p in (paths.cafile, paths.openssl_cafile) if p and Path(p).is_file()), None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((system.read_bytes() if system else b"") + ca.cert_pem.bytes())
    return path
