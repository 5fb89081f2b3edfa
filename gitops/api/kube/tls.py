"""A self-signed CA in the data dir and a serving certificate it signs, for kubectl.

client-go sends a kubeconfig's bearer token only over TLS, so the Kubernetes API is served
on an HTTPS listener; the kubeconfig carries this CA. The CA is made once per data dir
and kept; the serving certificate is remade when the addresses it must name change.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gitops.private_files import write_atomic

CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVER_CERT, SERVER_KEY = "server.crt", "server.key"
_YEARS = 10


def _write(path: Path, data: bytes) -> None:
    # 0600 from the first byte, like all of the data dir (kubeconfigs carry the CA itself).
    write_atomic(path, data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(
        now + datetime.timedelta(days=365 * _YEARS))


def ensure_ca(root: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = root / CA_CERT, root / CA_KEY
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cert, key
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"gitops-ca-{root.name}")])
    cert = _validity(x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(key.public_key()).serial_number(x509.random_serial_number())) \
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True) \
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True) \
        .sign(key, hashes.SHA256())
    _write(key_path, _key_pem(key))
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def ca_pem(root: Path) -> str:
    """The data dir's CA certificate (made first if there is none), as pods' ca.crt."""
    cert, _ = ensure_ca(root)
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _names(hosts: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = [x509.DNSName("localhost"),
                                   x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    for host in hosts:
        try:
            name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            name = x509.DNSName(host)
        if name not in out:
            out.append(name)
    return out


def ensure_server_cert(root: Path, hosts: list[str]) -> tuple[Path, Path]:
    """(certificate, key) naming localhost, 127.0.0.1 and hosts, signed by the data dir's CA."""
    ca_cert, ca_key = ensure_ca(root)
    cert_path, key_path = root / SERVER_CERT, root / SERVER_KEY
    wanted = _names(hosts)
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        try:
            have = list(cert.extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            have = []
        if set(have) == set(wanted) and cert.issuer == ca_cert.subject:
            return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _validity(x509.CertificateBuilder()
                     .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                                 "gitops-apiserver")]))
                     .issuer_name(ca_cert.subject).public_key(key.public_key())
                     .serial_number(x509.random_serial_number())) \
        .add_extension(x509.SubjectAlternativeName(wanted), critical=False) \
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True) \
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False) \
        .sign(ca_key, hashes.SHA256())
    _write(key_path, _key_pem(key))
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def server_context(root: Path, hosts: list[str]) -> ssl.SSLContext:
    cert, key = ensure_server_cert(root, hosts)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def client_context(root: Path) -> ssl.SSLContext:
    """For the gitops CLI and tests: trust exactly this data dir's CA."""
    return ssl.create_default_context(cafile=str(root / CA_CERT))
