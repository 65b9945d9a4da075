"""A local https server standing in for raw.githubusercontent.com: a test CA made here (cryptography), files served
from memory under /<repository>/<commit>/<path>, every GET counted, Range honoured, and an optional stall after
some bytes (to kill a client mid-download). Point the code at it with `env()`: HOLMESVAU_GITHUB_MIRROR and
REQUESTS_CA_BUNDLE."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import re
import ssl
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _cert(subject: str, key, issuer_key, issuer_name, ca: bool):
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        b = b.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
    return b.sign(issuer_key, hashes.SHA256())


def make_ca_and_server_cert(folder: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server.key) for 127.0.0.1, signed by a CA made now."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert("holmesvau test CA", ca_key, ca_key, None, True)
    leaf = _cert("127.0.0.1", key, ca_key, ca.subject, False)
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "server.pem").write_bytes(leaf.public_bytes(pem))
    (folder / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


class Mirror:
    """files: url path -> bytes. hits: the paths of every GET (with the Range asked, if any)."""

    def __init__(self, folder: Path):
        self.files: dict[str, bytes] = {}
        self.redirects: dict[str, str] = {}  # url path -> Location
        self.hits: list[tuple[str, str | None]] = []
        self.stall: dict[str, int] = {}  # url path -> bytes sent before its response stalls (until close())
        self.pause = 0.0  # seconds each response pauses half-way (to keep a download in flight)
        self.sent = threading.Event()  # set once a stalled response has sent its first bytes
        self._release = threading.Event()
        self.ca, cert, key = make_ca_and_server_cert(folder)
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                rng = self.headers.get("Range")
                mirror.hits.append((self.path, rng))
                if self.path in mirror.redirects:
                    self.send_response(302)
                    self.send_header("Location", mirror.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = mirror.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1)) if rng else 0
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if self.path in mirror.stall and not rng:
                    self.wfile.write(body[: mirror.stall[self.path]])
                    self.wfile.flush()
                    mirror.sent.set()
                    mirror._release.wait(60)
                    return
                half = len(body) // 2 if mirror.pause else len(body)
                self.wfile.write(body[:half])
                if mirror.pause:
                    self.wfile.flush()
                    time.sleep(mirror.pause)
                self.wfile.write(body[half:])

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that hung up early (refused a file half-way): expected here

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/gh"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def serve(self, released_file, data: bytes) -> None:
        """Serve `data` where the registry's URL for `released_file` points on this mirror."""
        self.files[self.path_of(released_file)] = data

    @staticmethod
    def path_of(released_file) -> str:
        f = released_file
        return f"/gh/{f.repository}/{f.commit}/{f.path}"

    def gets(self, released_file) -> list[str | None]:
        """The Range header of each GET of `released_file` (None: the whole file)."""
        return [rng for p, rng in self.hits if p == self.path_of(released_file)]

    def env(self) -> dict[str, str]:
        return {
            "HOLMESVAU_GITHUB_MIRROR": self.url,
            "REQUESTS_CA_BUNDLE": str(self.ca),
            "NO_PROXY": "127.0.0.1",
        }

    def close(self) -> None:
        self._release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
