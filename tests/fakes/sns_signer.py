"""Sign SNS HTTP notifications the way Amazon SNS does, with a test certificate.

One self-signed RSA certificate per test session; each SnsSigner serves it from a URL
matching SNS's certificate URL pattern through `fetch_certificate`, which records what was
fetched (so tests can prove a refused URL was never fetched).

    signer = SnsSigner("arn:aws:sns:us-east-1:123456789012:ses-events")
    body = signer.notification({"eventType": "Delivery", ...})
    sns.verify(body, fetch_certificate=signer.fetch_certificate, topic_arns=[signer.topic_arn])
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

_lock = threading.Lock()
_material: tuple[rsa.RSAPrivateKey, bytes] | None = None


def test_certificate() -> tuple[rsa.RSAPrivateKey, bytes]:
    """(private key, PEM certificate), generated once per process."""
    global _material
    with _lock:
        if _material is None:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
            now = datetime.now(UTC)
            cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                    .public_key(key.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(now - timedelta(days=1))
                    .not_valid_after(now + timedelta(days=30))
                    .sign(key, hashes.SHA256()))
            _material = (key, cert.public_bytes(serialization.Encoding.PEM))
        return _material


class SnsSigner:
    def __init__(self, topic_arn: str, region: str = "us-east-1") -> None:
        self.topic_arn = topic_arn
        self.region = region
        self.cert_url = (f"https://sns.{region}.amazonaws.com/"
                         f"SimpleNotificationService-{secrets.token_hex(16)}.pem")
        self.fetched: list[str] = []
        self._key, self._pem = test_certificate()

    def fetch_certificate(self, url: str) -> bytes:
        self.fetched.append(url)
        if url != self.cert_url:
            raise LookupError("no such certificate")
        return self._pem

    def notification(self, message: str | dict[str, Any], message_id: str | None = None,
                     version: str = "1", subject: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "Type": "Notification",
            "MessageId": message_id or str(uuid.uuid4()),
            "TopicArn": self.topic_arn,
            "Message": message if isinstance(message, str) else json.dumps(message),
            "Timestamp": _timestamp(),
            "SignatureVersion": version,
            "SigningCertURL": self.cert_url,
            "UnsubscribeURL": (f"https://sns.{self.region}.amazonaws.com/?Action=Unsubscribe"
                               f"&SubscriptionArn={self.topic_arn}:{uuid.uuid4()}"),
        }
        if subject is not None:
            body["Subject"] = subject
        return self.sign(body)

    def subscription_confirmation(self, subscribe_url: str | None = None,
                                  version: str = "1") -> dict[str, Any]:
        token = secrets.token_hex(32)
        url = subscribe_url or (
            f"https://sns.{self.region}.amazonaws.com/?Action=ConfirmSubscription"
            f"&TopicArn={self.topic_arn}&Token={token}")
        body = {
            "Type": "SubscriptionConfirmation",
            "MessageId": str(uuid.uuid4()),
            "Token": token,
            "TopicArn": self.topic_arn,
            "Message": (f"You have chosen to subscribe to the topic {self.topic_arn}.\n"
                        "To confirm the subscription, visit the SubscribeURL included in "
                        "this message."),
            "SubscribeURL": url,
            "Timestamp": _timestamp(),
            "SignatureVersion": version,
            "SigningCertURL": self.cert_url,
        }
        return self.sign(body)

    def sign(self, body: dict[str, Any]) -> dict[str, Any]:
        """(Re)sign `body` with its own SignatureVersion; returns a new dict."""
        signed = dict(body)
        algorithm = hashes.SHA256() if signed.get("SignatureVersion") == "2" else hashes.SHA1()
        signature = self._key.sign(string_to_sign(signed), padding.PKCS1v15(), algorithm)
        signed["Signature"] = base64.b64encode(signature).decode("ascii")
        return signed


def string_to_sign(body: dict[str, Any]) -> bytes:
    """AWS's canonical form, written here independently of gateways.sns so that a wrong
    verifier cannot agree with a wrong signer."""
    if body["Type"] == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn",
                 "Type"]
    return "".join(f"{n}\n{body[n]}\n" for n in names if n in body).encode("utf-8")


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
