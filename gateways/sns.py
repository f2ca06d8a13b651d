"""Amazon SNS HTTP(S) notifications: parse, verify the signature, confirm subscriptions.

SNS signs each message with a certificate it serves from its own host. We check the
certificate's URL against the SNS host pattern before fetching anything (otherwise anyone
could point us at their own certificate), check the topic is one we subscribed to, and
verify the RSA PKCS#1 v1.5 signature over the canonical string AWS documents
("Verifying the signatures of Amazon SNS messages"). Reasons never quote field values.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

CERT_URL = re.compile(
    r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/SimpleNotificationService-[a-z0-9]+\.pem$")
SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"
TYPES = frozenset({NOTIFICATION, SUBSCRIPTION_CONFIRMATION, UNSUBSCRIBE_CONFIRMATION})

# The signed fields, in the order AWS documents (alphabetical); Subject only when present.
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                       "TopicArn", "Type")
HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "1": hashes.SHA1,  # SNS's default SignatureVersion; SHA1 is what it signs with
    "2": hashes.SHA256,
}
MAX_BODY_BYTES = 512 * 1024  # SNS messages are at most 256 KB
MAX_CERT_BYTES = 64 * 1024
FETCH_TIMEOUT_SECONDS = 5.0
_CACHE_SIZE = 16


class SnsError(ValueError):
    """A message we refuse. `reason` is one line, safe to answer and log; `status` the
    HTTP answer: 400 for a malformed body, 403 for one we cannot trust."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def parse_body(raw: bytes) -> dict[str, Any]:
    """SNS posts its JSON as text/plain; anything but a JSON object is refused."""
    if len(raw) > MAX_BODY_BYTES:
        raise SnsError("body too large", 400)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise SnsError("body is not JSON", 400) from None
    if not isinstance(body, dict):
        raise SnsError("body is not a JSON object", 400)
    return body


def canonical_string(message: dict[str, Any]) -> bytes:
    """"Key\\nValue\\n" for each signed field of the message's type."""
    kind = message.get("Type")
    fields = NOTIFICATION_FIELDS if kind == NOTIFICATION else CONFIRMATION_FIELDS
    parts: list[str] = []
    for name in fields:
        if name == "Subject" and message.get("Subject") is None:
            continue
        value = message.get(name)
        if not isinstance(value, str):
            raise SnsError(f"missing field {name}", 400)
        parts.append(f"{name}\n{value}\n")
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (JSON allows "\\ud800"): SNS never signs one
        raise SnsError("a signed field is not valid text", 400) from None


def verify(
    message: dict[str, Any],
    *,
    fetch_certificate: Callable[[str], bytes],
    topic_arns: Collection[str],
) -> None:
    """Raises SnsError unless the message is a signed SNS message from one of our topics."""
    kind = message.get("Type")
    if kind not in TYPES:
        raise SnsError("unknown message Type")
    if message.get("TopicArn") not in topic_arns:
        raise SnsError("message is not from a subscribed topic")
    cert_url = message.get("SigningCertURL")
    # Checked before any fetch: the URL is attacker-controlled input until then.
    if not isinstance(cert_url, str) or not CERT_URL.match(cert_url):
        raise SnsError("signing certificate URL is not an SNS URL")
    version = message.get("SignatureVersion")
    algorithm = HASHES.get(version) if isinstance(version, str) else None
    if algorithm is None:
        raise SnsError("unsupported SignatureVersion")
    signature_text = message.get("Signature")
    if not isinstance(signature_text, str):
        raise SnsError("missing Signature")
    try:
        signature = base64.b64decode(signature_text, validate=True)
    except (binascii.Error, ValueError):
        raise SnsError("Signature is not base64") from None
    signed = canonical_string(message)
    key = _public_key(cert_url, fetch_certificate)
    try:
        key.verify(signature, signed, padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise SnsError("signature does not match") from None


def confirm_subscription(message: dict[str, Any], fetch: Callable[[str], bytes]) -> None:
    """Visit the SubscribeURL of a (verified) SubscriptionConfirmation; only SNS's own
    https host is ever called, so a message cannot make us request another URL."""
    if message.get("Type") != SUBSCRIPTION_CONFIRMATION:
        raise SnsError("not a SubscriptionConfirmation", 400)
    url = message.get("SubscribeURL")
    if not isinstance(url, str):
        raise SnsError("missing field SubscribeURL", 400)
    parts = urlsplit(url)
    if (parts.scheme != "https" or parts.username is not None or parts.password is not None
            or parts.port is not None or not SNS_HOST.match(parts.hostname or "")
            or parts.netloc != parts.hostname):
        raise SnsError("SubscribeURL is not an SNS URL")
    fetch(url)


def default_fetch(url: str) -> bytes:
    """Production fetcher (certificates, SubscribeURL): https only, with a timeout."""
    if not url.startswith("https://"):
        raise SnsError("refusing a non-https fetch")
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as answer:
        data: bytes = answer.read(MAX_CERT_BYTES + 1)
    return data


# Certificates by (fetcher, URL): SNS rotates them rarely, and fetching one per message
# would put an outbound request on every notification. Keyed by the fetcher too, so two
# sources of certificates (tests) never see each other's keys.
_keys: OrderedDict[tuple[Callable[[str], bytes], str], rsa.RSAPublicKey] = OrderedDict()
_keys_lock = threading.Lock()


def _public_key(url: str, fetch: Callable[[str], bytes]) -> rsa.RSAPublicKey:
    with _keys_lock:
        cached = _keys.get((fetch, url))
        if cached is not None:
            _keys.move_to_end((fetch, url))
            return cached
    try:
        pem = fetch(url)
    except SnsError:
        raise
    except Exception:  # any fetch trouble is one reason for the caller
        raise SnsError("signing certificate could not be fetched", 503) from None
    if len(pem) > MAX_CERT_BYTES:
        raise SnsError("signing certificate too large")
    try:
        key = x509.load_pem_x509_certificate(pem).public_key()
    except ValueError:
        raise SnsError("signing certificate is unreadable") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise SnsError("signing certificate is not RSA")
    with _keys_lock:
        _keys[(fetch, url)] = key
        while len(_keys) > _CACHE_SIZE:
            _keys.popitem(last=False)
    return key
