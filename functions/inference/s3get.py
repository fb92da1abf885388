"""S3 GetObject for the cold start: SigV4-signed HTTPS GETs with the standard library alone.

Building boto3's S3 client is the largest part of a cold start after onnxruntime itself (importing botocore and
loading the S3 service model: ~150 ms on Lambda, more here), for one GET. Where the credentials come from the
environment, as on Lambda without SnapStart (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), a
signed GET needs only http.client, hmac and hashlib. The signer is checked byte for byte against botocore's
S3SigV4Auth in tests/unit/test_s3get.py. Anywhere else (SnapStart functions get container credentials, a laptop
a profile) :func:`environment_client` answers None and the caller uses boto3.

Failures look like botocore's to the store: an exception whose ``response`` holds ``Error.Code`` (NoSuchKey,
AccessDenied, ...), so ``store.py`` classifies them the same way. Like botocore's standard retry mode, a GET that
meets a 5xx, a throttle or a connection error is tried up to 3 times with backoff; the read timeout bounds a
stalled stream. A certificate that fails verification (an untrusted CA, another host's name) is not tried again.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import random
import re
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 15.0
MAX_ATTEMPTS = 3
_RETRIED_CODES = frozenset({"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "Throttling"})
_ERROR_CODE = re.compile(rb"<Code>([^<]*)</Code>")
_ERROR_MESSAGE = re.compile(rb"<Message>([^<]*)</Message>")


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None


class S3Error(Exception):
    """An S3 error answer, shaped like botocore's ClientError (``response['Error']['Code']``)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"S3 answered {status} {code}: {message}" if message else f"S3 answered {status} {code}")
        self.status = status
        self.response: dict[str, Any] = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    credentials: Credentials,
    region: str,
    now: datetime,
    *,
    service: str = "s3",
    payload_sha256: str = EMPTY_SHA256,
) -> dict[str, str]:
    """``headers`` plus X-Amz-Date, X-Amz-Content-SHA256, X-Amz-Security-Token and Authorization (SigV4).

    Every header given is signed, and Host from the URL. The path is signed as sent, not normalized (S3's rule).
    """
    parts = urlsplit(url)
    timestamp = now.strftime("%Y%m%dT%H%M%SZ")
    signed = {**headers, "X-Amz-Date": timestamp, "X-Amz-Content-SHA256": payload_sha256}
    if credentials.token:
        signed["X-Amz-Security-Token"] = credentials.token
    canonical = {"host": parts.netloc, **{k.lower(): " ".join(v.split()) for k, v in signed.items()}}
    names = sorted(canonical)
    query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted(p.split("=", 1) if "=" in p else (p, "") for p in parts.query.split("&") if p)
    )
    request = "\n".join(
        (
            method,
            parts.path or "/",
            query,
            "".join(f"{n}:{canonical[n]}\n" for n in names),
            ";".join(names),
            payload_sha256,
        )
    )
    scope = f"{timestamp[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(("AWS4-HMAC-SHA256", timestamp, scope, hashlib.sha256(request.encode()).hexdigest()))
    key = ("AWS4" + credentials.secret_key).encode()
    for part in (timestamp[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    signed["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, SignedHeaders={';'.join(names)}, "
        f"Signature={signature}"
    )
    return signed


class _Body:
    """The object's bytes as they arrive: what the store reads (``iter_chunks``), like botocore's StreamingBody."""

    def __init__(self, response: http.client.HTTPResponse, connection: http.client.HTTPConnection) -> None:
        self._response = response
        self._connection = connection

    def iter_chunks(self, chunk_size: int) -> Iterator[bytes]:
        while chunk := self._response.read(chunk_size):
            yield chunk
        if self._response.length:  # the connection ended before Content-Length bytes came
            raise http.client.IncompleteRead(b"", self._response.length)

    def read(self) -> bytes:
        return self._response.read()

    def close(self) -> None:
        self._response.close()
        self._connection.close()


class S3GetClient:
    """``get_object(Bucket=..., Key=..., Range=..., IfMatch=...)`` over HTTPS (or the endpoint's scheme)."""

    def __init__(self, credentials: Credentials, region: str, endpoint_url: str | None = None) -> None:
        self.credentials = credentials
        self.region = region
        self.endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        self._tls: ssl.SSLContext | None = None
        self._tls_lock = threading.Lock()

    def _tls_context(self) -> ssl.SSLContext:
        """The client's one verifying context (the default verify paths: the system's CA bundle, or SSL_CERT_FILE).
        Building one reads and parses the whole bundle, 25 ms of CPU here, which each GET of a ranged fetch would
        otherwise pay again; a context holds no connection, so it is safe to share between the parts' threads."""
        with self._tls_lock:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            return self._tls

    def url_for(self, bucket: str, key: str) -> str:
        path = quote(key, safe="/~")
        if self.endpoint_url is not None:  # a local S3 (moto's server): path-style, as botocore uses for it
            return f"{self.endpoint_url}/{bucket}/{path}"
        if "." in bucket:  # a dotted bucket breaks the wildcard certificate of virtual-hosted URLs
            return f"https://s3.{self.region}.amazonaws.com/{bucket}/{path}"
        return f"https://{bucket}.s3.{self.region}.amazonaws.com/{path}"

    def get_object(  # the parameters are botocore's, so the store calls either client alike
        self,
        *,
        Bucket: str,  # noqa: N803
        Key: str,  # noqa: N803
        Range: str | None = None,  # noqa: N803
        IfMatch: str | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        url = self.url_for(Bucket, Key)
        headers = {}
        if Range is not None:
            headers["Range"] = Range
        if IfMatch is not None:
            headers["If-Match"] = IfMatch
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return self._get(url, headers)
            except ssl.SSLCertVerificationError:
                # The same server presents the same certificate a moment later: two more handshakes and their sleeps
                # would only delay the failure (botocore's standard mode retries it as a connection error). The
                # service tries the whole load again after its own backoff (service.py).
                raise
            except (S3Error, OSError, http.client.HTTPException) as exc:
                retried = isinstance(exc, OSError | http.client.HTTPException) or (
                    exc.status >= 500 or exc.response["Error"]["Code"] in _RETRIED_CODES
                )
                if not retried or attempt == MAX_ATTEMPTS:
                    raise
                # Full jitter on an exponential base, as botocore's standard mode (base 1 s there; 0.1 s here, cap 1 s).
                time.sleep(random.uniform(0, min(1.0, 0.1 * 2**attempt)))
        raise AssertionError("unreachable")

    def _get(self, url: str, headers: dict[str, str]) -> dict[str, Any]:
        parts = urlsplit(url)
        signed = sign("GET", url, headers, self.credentials, self.region, datetime.now(UTC))
        connection = self._connect(parts.scheme, parts.netloc)
        try:
            connection.request("GET", parts.path, headers=signed)
            if connection.sock is not None:  # connected: from now on the timeout bounds each read of the stream
                connection.sock.settimeout(READ_TIMEOUT_S)
            response = connection.getresponse()
        except BaseException:
            connection.close()
            raise
        if response.status >= 300:
            text = response.read(64 * 1024)
            connection.close()
            code = _ERROR_CODE.search(text)
            message = _ERROR_MESSAGE.search(text)
            raise S3Error(
                response.status,
                code[1].decode() if code else str(response.status),
                message[1].decode() if message else "",
            )
        length = response.getheader("Content-Length")
        return {
            "Body": _Body(response, connection),
            "ContentLength": int(length) if length is not None else None,
            "ContentRange": response.getheader("Content-Range"),
            "ETag": response.getheader("ETag"),
        }

    def _connect(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        # One connection per GET: a cold start makes one, a ranged fetch one per part; none outlives its body,
        # so nothing stale is left in a SnapStart snapshot either.
        if scheme == "https":
            return http.client.HTTPSConnection(netloc, timeout=CONNECT_TIMEOUT_S, context=self._tls_context())
        return http.client.HTTPConnection(netloc, timeout=CONNECT_TIMEOUT_S)


def environment_client(environ: Mapping[str, str]) -> S3GetClient | None:
    """A client signing with the environment's credentials, or None when they are not all there."""
    access_key, secret_key = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if not (access_key and secret_key and region):
        return None
    endpoint = None
    if environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() != "true":
        # botocore's order: the service's own variable first, then the global one.
        endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL") or None
    return S3GetClient(Credentials(access_key, secret_key, environ.get("AWS_SESSION_TOKEN") or None), region, endpoint)
