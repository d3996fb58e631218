#!/usr/bin/env python3
"""Certificates for TLS specs:  tls_certs.py DIR

  ca.pem              a CA (what the client is told to trust)
  good.pem/.key       signed by it, for 127.0.0.1 and localhost
  wrongname.pem/.key  signed by it, for other.example only
  self.pem/.key       for 127.0.0.1 but signed by itself
  expired.pem/.key    signed by it, for 127.0.0.1, expired yesterday
"""
import datetime
import ipaddress
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

d = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc)
day = datetime.timedelta(days=1)


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def write(base, cert, key):
    with open(f"{d}/{base}.pem", "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        with open(f"{d}/{base}.key", "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))


def cert(cn, sans, issuer, issuer_key, key, start, end, ca=False):
    b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(issuer).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                          content_commitment=False, key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
    return b.sign(issuer_key, hashes.SHA256())


ca_key = ec.generate_private_key(ec.SECP256R1())
ca = cert("sluice test CA", None, name("sluice test CA"), ca_key, ca_key, now - day, now + day, ca=True)
write("ca", ca, None)
here = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
for base, sans, signed, start, end in (
        ("good", here, True, now - day, now + day),
        ("wrongname", [x509.DNSName("other.example")], True, now - day, now + day),
        ("self", here, False, now - day, now + day),
        ("expired", here, True, now - 3 * day, now - day)):
    k = ec.generate_private_key(ec.SECP256R1())
    c = cert(base, sans, ca.subject if signed else name(base), ca_key if signed else k, k, start, end)
    write(base, c, k)
