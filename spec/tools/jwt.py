#!/usr/bin/env python3
"""Makes a JWT for specs: jwt.py ALG KEY CLAIMS_JSON [HEADER_ALG]

ALG HS256: KEY is the secret. ALG RS256: KEY is a private key PEM file
(signed with the openssl CLI). HEADER_ALG overrides the header's "alg" (to
forge tokens). Claims may use "now+N" / "now-N" strings for times.
"""
import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


alg, key, claims = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
header_alg = sys.argv[4] if len(sys.argv) > 4 else alg
for k, v in list(claims.items()):
    if isinstance(v, str) and v.startswith("now"):
        claims[k] = int(time.time()) + int(v[3:] or 0)
signing = b64(json.dumps({"alg": header_alg, "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
if alg == "HS256":
    sig = hmac.new(key.encode(), signing.encode(), hashlib.sha256).digest()
else:
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing.encode(),
                         capture_output=True, check=True).stdout
print(signing + "." + b64(sig))
