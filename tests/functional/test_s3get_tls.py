"""The cold start's own S3 client (functions/inference/s3get.py) over real TLS: it fetches from a server whose
certificate it trusts, and refuses one issued by a CA it does not trust or issued for another host name.

S3 is moto's WSGI app served over HTTPS on 127.0.0.1 by werkzeug (as moto's ThreadedMotoServer serves it over HTTP),
with certificates from test CAs made by trustme. The client is the code that ships, unchanged: an
``HTTPSConnection`` with Python's default context, which trusts what OpenSSL's default verify paths hold
(``ssl.get_default_verify_paths()``: the file named by SSL_CERT_FILE when set, the system bundle otherwise; on
Lambda, Amazon Linux's). The test CA is trusted the way a Lambda runtime trusts its bundle: through SSL_CERT_FILE.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import trustme

from bench.https_s3 import HttpsS3
from functions.inference.s3get import S3GetClient
from functions.inference.store import ArtifactUnreachable, ModelStore
from modelrail.local.aws import ARTIFACT_BUCKET, CREDENTIALS, REGION
from tests.functional.conftest import IRIS, Function, cold_start

pytestmark = pytest.mark.functional

KEY = "models/iris/model.onnx"
SHA256 = hashlib.sha256(IRIS.read_bytes()).hexdigest()
URI = f"s3://{ARTIFACT_BUCKET}/{KEY}"
ROW = {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
# Iris is 890 bytes: in 100-byte parts, two at a time, it takes the store's ranged, concurrent path (9 GETs).
SMALL_PARTS = {"part_bytes": 100, "concurrency": 2}


@dataclass(frozen=True)
class Servers:
    ca_pem: Path  # the CA the function trusts (SSL_CERT_FILE)
    trusted: HttpsS3  # its certificate for 127.0.0.1, from that CA
    rogue_ca_pem: Path
    untrusted: HttpsS3  # a certificate for 127.0.0.1 from another CA
    other_host: HttpsS3  # a certificate from the trusted CA, for another host name


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    ca, rogue = trustme.CA(), trustme.CA()
    pems = tmp_path_factory.mktemp("ca")
    ca.cert_pem.write_to_path(str(pems / "ca.pem"))
    rogue.cert_pem.write_to_path(str(pems / "rogue.pem"))
    started: list[HttpsS3] = []
    try:
        for cert in (ca.issue_cert("127.0.0.1"), rogue.issue_cert("127.0.0.1"), ca.issue_cert("other.example")):
            started.append(HttpsS3(cert))
        # The three servers share moto's in-process backend: the object uploaded once is in each one's S3.
        s3 = boto3.client(
            "s3",
            endpoint_url=started[0].endpoint_url,
            region_name=REGION,
            verify=str(pems / "ca.pem"),
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=CREDENTIALS["AWS_SESSION_TOKEN"],
        )
        s3.create_bucket(Bucket=ARTIFACT_BUCKET)
        s3.put_object(Bucket=ARTIFACT_BUCKET, Key=KEY, Body=IRIS.read_bytes())
        yield Servers(pems / "ca.pem", started[0], pems / "rogue.pem", started[1], started[2])
    finally:
        for server in started:
            server.stop()


def trust(monkeypatch: pytest.MonkeyPatch, pem: Path) -> None:
    """Trust the CA in ``pem`` as the runtime trusts its bundle, and check that a default context now holds it."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))
    der = ssl.PEM_cert_to_DER_cert(pem.read_text())
    # Read when a context is created, not when ssl was imported: what s3get's next connection will trust.
    assert der in ssl.create_default_context().get_ca_certs(binary_form=True)


@pytest.fixture
def trusting(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> Servers:
    trust(monkeypatch, servers.ca_pem)
    return servers


def recording(client: S3GetClient, monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The Range of each GET the client is asked for. The 2nd and 3rd wait for each other: both in flight at once."""
    ranges: list[str | None] = []
    together = threading.Barrier(2, timeout=5)
    lock = threading.Lock()
    get_object: Callable[..., dict[str, Any]] = client.get_object

    def recorded(**kwargs: Any) -> dict[str, Any]:
        with lock:
            ranges.append(kwargs.get("Range"))
            order = len(ranges)
        if order in (2, 3):
            together.wait()
        return get_object(**kwargs)

    monkeypatch.setattr(client, "get_object", recorded)
    return ranges


def files_in(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


@pytest.mark.parametrize("options", [{}, SMALL_PARTS], ids=["whole", "ranged"])
def test_the_model_is_fetched_over_https_verified_and_cached(
    trusting: Servers, options: dict[str, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = trusting.trusted
    client = server.client()
    ranges = recording(client, monkeypatch)
    before = server.connections
    store = ModelStore(tmp_path / "cache", client, **options)
    contexts: list[ssl.SSLContext] = []
    create_default_context = ssl.create_default_context

    def created(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        contexts.append(create_default_context(*args, **kwargs))
        return contexts[-1]

    monkeypatch.setattr(ssl, "create_default_context", created)
    monkeypatch.setattr(ssl, "_create_default_https_context", created)  # http.client's own, without a context

    path = store.fetch(URI, SHA256)

    assert path.read_bytes() == IRIS.read_bytes()
    assert files_in(tmp_path / "cache") == [f"{SHA256}.onnx"]
    if options:  # every byte asked for once, in 100-byte parts, as over HTTP (test_ranged_fetch.py)
        spans = sorted(tuple(int(x) for x in r.removeprefix("bytes=").split("-")) for r in ranges if r)
        assert spans[0] == (0, 99)
        assert spans[-1] == (800, 889)
        assert all(b + 1 == c for (_, b), (c, _) in itertools.pairwise(spans))
        assert len(ranges) == 9
    else:
        assert len(ranges) == 1
    assert server.connections - before == len(ranges)  # one TLS connection per GET, each to this server
    # One verifying context for all of them: each new one parses the whole CA bundle again (25 ms here).
    assert len(contexts) == 1


@dataclass(frozen=True)
class Refusal:
    server: Callable[[Servers], HttpsS3]
    why: str  # what OpenSSL says, as the store's message carries it


REFUSALS = {
    # The server sends its leaf only (as S3 does, without its root): no chain to a trusted root.
    "untrusted-ca": Refusal(lambda s: s.untrusted, "certificate verify failed: unable to get local issuer certificate"),
    "other-host": Refusal(
        lambda s: s.other_host,
        "certificate verify failed: IP address mismatch, certificate is not valid for '127.0.0.1'",
    ),
}


@pytest.mark.parametrize("refusal", REFUSALS.values(), ids=REFUSALS.keys())
@pytest.mark.parametrize("options", [{}, SMALL_PARTS], ids=["whole", "ranged"])
def test_a_server_the_client_must_not_trust_is_refused_once_and_nothing_is_cached(
    trusting: Servers, refusal: Refusal, options: dict[str, int], tmp_path: Path
) -> None:
    server = refusal.server(trusting)
    before = server.connections
    store = ModelStore(tmp_path / "cache", server.client(), **options)

    with pytest.raises(
        ArtifactUnreachable,
        match=rf"^cannot read model artifact {re.escape(URI)}: SSLCertVerificationError: "
        rf"\[SSL: CERTIFICATE_VERIFY_FAILED\] {re.escape(refusal.why)}",
    ):
        store.fetch(URI, SHA256)

    assert files_in(tmp_path / "cache") == []
    # One handshake, not MAX_ATTEMPTS: the same server presents the same certificate a moment later (s3get.py).
    assert server.connections - before == 1


def test_the_untrusted_server_serves_once_its_ca_is_trusted(
    servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The refusal above is the client's verdict on the certificate, not a server that cannot serve: trusting the
    # rogue CA instead (SSL_CERT_FILE read at the next connection) fetches the same model from the same server.
    trust(monkeypatch, servers.rogue_ca_pem)

    path = ModelStore(tmp_path / "cache", servers.untrusted.client(), **SMALL_PARTS).fetch(URI, SHA256)

    assert path.read_bytes() == IRIS.read_bytes()


def start_function(monkeypatch: pytest.MonkeyPatch, server: HttpsS3, cache: Path) -> Function:
    """The handler's cold start in an execution environment (its download starts before the heavy imports)."""
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "modelrail-iris")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    env = {
        "MODEL_NAME": "iris",
        "MODEL_URI": URI,
        "MODEL_SHA256": SHA256,
        "AWS_LAMBDA_FUNCTION_VERSION": "1",
        "MODEL_CACHE_DIR": str(cache),
    }
    return Function(cold_start(monkeypatch, env), "iris")


def test_the_function_cold_starts_from_s3_over_https(
    trusting: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    function = start_function(monkeypatch, trusting.trusted, tmp_path / "cache")

    answer = function.infer(ROW)

    assert answer.status == 200
    assert function.module._prefetch is not None  # fetched by the cold start's own client (s3get), not boto3
    assert files_in(tmp_path / "cache") == [f"{SHA256}.onnx"]


@pytest.mark.parametrize("refusal", REFUSALS.values(), ids=REFUSALS.keys())
def test_the_function_serves_no_model_from_a_server_it_must_not_trust(
    trusting: Servers, refusal: Refusal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    function = start_function(monkeypatch, refusal.server(trusting), tmp_path / "cache")

    answer = function.infer(ROW)

    assert answer.status == 503
    assert f"cannot read model artifact {URI}: SSLCertVerificationError: " in answer.error
    assert refusal.why in answer.error
    assert files_in(tmp_path / "cache") == []
