"""The cluster's certificate authority and the certificates it signs (TLS on the VIP).

``contrail-ha`` makes one CA per cluster (ECDSA P-256, ten years), kept under the cluster's
root with the other secrets (``secrets/ca.key`` 0600, ``secrets/ca.crt``), and signs each
server's certificate with it; clients trust ``ca.crt``. A site that brings its own certificate
and key (topology ``tls``) gets those instead of ours. Like the secrets, everything is made once
and kept: a re-render issues nothing new unless a certificate's names changed or it is within
:data:`RENEW_BEFORE` of its end.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from contrail_ha.rendering.base import Layout
from contrail_ha.topology.plan import Plan

CA_DAYS = 3650
CERT_DAYS = 825  # the longest validity clients (browsers, Apple's TLS) accept for a server certificate
RENEW_BEFORE = dt.timedelta(days=30)
CA_CERT = "ca.crt"
CA_KEY = "ca.key"


class SiteCertificateError(ValueError):
    """The site's certificate or key cannot serve; ``field`` is ``cert`` or ``key``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key, PEM."""

    cert: str
    key: str

    @property
    def pem(self) -> str:
        """Certificate then key in one file, as HAProxy's ``crt`` takes them."""
        return self.cert + self.key


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new 0600 file atomically (another process may be making the same one)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def ca(layout: Layout, cluster_id: str) -> Pair:
    """The cluster's CA, made at the first call and kept."""
    d = layout.secrets_dir
    cert_f, key_f = d / CA_CERT, d / CA_KEY
    if cert_f.exists() and key_f.exists():
        return Pair(cert_f.read_text(), key_f.read_text())
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "contrail-ha"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"contrail-ha CA {cluster_id}")])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    pair = Pair(_cert_pem(cert), _key_pem(key))
    _write_private(key_f, pair.key)
    _write_private(cert_f, pair.cert)
    os.chmod(cert_f, 0o644)  # the CA's certificate is public: clients need it
    return pair


def _san(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def _fresh(pem: str, names: list[str], issuer: x509.Certificate) -> bool:
    """Whether a kept certificate still serves: same names, same issuer, not near its end."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    return (set(map(str, sans)) == set(map(str, _san(names))) and cert.issuer == issuer.subject
            and cert.not_valid_after_utc - RENEW_BEFORE > _now())


def server(layout: Layout, cluster_id: str, name: str, names: list[str]) -> Pair:
    """The server certificate ``name`` (kept as ``secrets/tls-<name>.pem``) for ``names`` (DNS names
    and IP addresses), signed by the cluster's CA; re-issued when its names change or it nears its end."""
    authority = ca(layout, cluster_id)
    ca_cert = x509.load_pem_x509_certificate(authority.cert.encode())
    kept = layout.secrets_dir / f"tls-{name}.pem"
    if kept.exists():
        text = kept.read_text()
        cert_text, _, key_rest = text.partition("-----END CERTIFICATE-----\n")
        cert_text += "-----END CERTIFICATE-----\n"
        if key_rest and _fresh(cert_text, names, ca_cert):
            return Pair(cert_text, key_rest)
    ca_key = serialization.load_pem_private_key(authority.key.encode(), None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"the cluster CA's key in {layout.secrets_dir / CA_KEY} is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "contrail-ha"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CERT_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(_san(names)), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pair = Pair(_cert_pem(cert), _key_pem(key))
    _write_private(kept, pair.pem)
    return pair


def load_site(cert: str, key: str) -> Pair:
    """The site's own certificate chain and key (PEM files), checked to belong together."""
    texts = {}
    for fld, path in (("cert", cert), ("key", key)):
        try:
            texts[fld] = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise SiteCertificateError(fld, f"cannot read {path}: {e.__class__.__name__}") from e
    try:
        chain = x509.load_pem_x509_certificates(texts["cert"].encode())
    except ValueError as e:
        raise SiteCertificateError("cert", f"{cert} holds no PEM certificate") from e
    try:
        private = serialization.load_pem_private_key(texts["key"].encode(), None)
    except (ValueError, TypeError) as e:
        raise SiteCertificateError("key", f"{key} holds no unencrypted PEM private key") from e
    same = serialization.PublicFormat.SubjectPublicKeyInfo
    if chain[0].public_key().public_bytes(serialization.Encoding.DER, same) != \
            private.public_key().public_bytes(serialization.Encoding.DER, same):
        raise SiteCertificateError("key", f"{key} is not the key of the first certificate in {cert}")
    if chain[0].not_valid_after_utc <= _now():
        raise SiteCertificateError("cert", f"{cert} expired on {chain[0].not_valid_after_utc:%Y-%m-%d}")
    key_text = texts["key"] if texts["key"].endswith("\n") else texts["key"] + "\n"
    return Pair("".join(_cert_pem(c) for c in chain), key_text)


def vip_ca(plan: Plan, layout: Layout) -> str | None:
    """The CA file a client of the VIP verifies it with: the cluster CA's certificate (made if
    missing), or with the site's own certificate its ``tls.ca``. None: nothing to give (the
    system's trust store, or no TLS on the VIP)."""
    tls = plan.topology.tls
    if not tls.vip:
        return None
    if tls.cert is not None:
        return tls.ca
    ca(layout, plan.cluster_id)
    return str(layout.secrets_dir / CA_CERT)


def vip_context(plan: Plan, layout: Layout) -> ssl.SSLContext:
    """An SSL context that verifies the VIP's certificate (for httpx ``verify=``, aiohttp ``ssl=``)."""
    return ssl.create_default_context(cafile=vip_ca(plan, layout))


def endpoints(plan: Plan, layout: Layout) -> str:
    """Where users reach the cluster, and the CA their clients verify it with (for ``up``'s last line)."""
    ca = vip_ca(plan, layout)
    return f"config API {plan.config_api_url}, analytics API {plan.analytics_api_url}" + (f"; CA {ca}" if ca else "")
