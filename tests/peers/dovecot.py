"""A private Dovecot IMAP server on 127.0.0.1: Debian's dovecot-imapd (./scripts/test installs
it), a throwaway config file (`dovecot -c FILE`), its own base_dir, state_dir and log, one user
(`bounces`) with a Maildir, IMAP with STARTTLS and IMAPS on free ports, and a certificate for
127.0.0.1 and localhost signed by a CA made for this run (`ca.pem`), so clients verify for real.
No password is accepted before TLS (ssl = required)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.peers import (
    await_stopped,
    free_port,
    listening,
    open_to_daemon_users,
    read_pid,
    system_binary,
    wait_until,
)

MAIL_USER = "nobody"  # owns the Maildir; Dovecot refuses to serve mail as root




@dataclass
class DovecotPeer:
    root: Path
    imap_port: int
    imaps_port: int
    host: str = "127.0.0.1"
    user: str = "bounces"
    password: str = "s3cret-Bounce-pass"  # a test secret of a throwaway server

    @property
    def config(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def ca_file(self) -> Path:
        return self.root / "tls" / "ca.pem"

    @property
    def maildir(self) -> Path:
        return self.root / "home" / self.user / "Maildir"

    def deliver(self, raw: bytes, folder: str = "INBOX") -> None:
        """Store one message as the server's own delivery would (`doveadm save`, with the
        user's uid), creating `folder` if needed."""
        if folder != "INBOX":
            self._doveadm("mailbox", "create", "-u", self.user, folder, may_fail=True)
        self._doveadm("save", "-u", self.user, "-m", folder, stdin=raw)

    def folder_messages(self, folder: str = "INBOX") -> list[bytes]:
        """The messages in `folder`, read straight from the Maildir (not through IMAP, which
        is what the tests check), oldest file name first; empty if the folder does not
        exist. Dovecot stores lines ending in LF."""
        path = self.maildir if folder == "INBOX" else self.maildir / ("." + folder.replace(
            "/", "."))
        files = [file for sub in ("new", "cur") if (path / sub).is_dir()
                 for file in (path / sub).iterdir() if file.is_file()]
        return [file.read_bytes() for file in sorted(files, key=lambda file: file.name)]

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else "(no log written)"

    def _doveadm(self, *args: str, stdin: bytes | None = None, may_fail: bool = False) -> None:
        result = subprocess.run(["doveadm", "-c", str(self.config), *args], input=stdin,
                                capture_output=True, timeout=60, check=False)
        if result.returncode != 0 and not may_fail:
            raise AssertionError(f"doveadm {' '.join(args)} exited {result.returncode}: "
                                 f"{result.stderr.decode(errors='replace')}\n{self.log()}")


def write_certificates(folder: Path) -> None:
    """ca.pem (a CA made for this run), server.pem (leaf for 127.0.0.1 and localhost, then
    the CA) and server.key. Dates come from the clock the tests run on (libfaketime too)."""
    folder.mkdir(mode=0o755)
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ainews test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "server.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key_file = folder / "server.key"
    key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)


def _config(peer: DovecotPeer, uid: int, gid: int) -> str:
    root = peer.root
    dh = Path("/usr/share/dovecot/dh.pem")
    return f"""\
instance_name = ainews-test-{root.name}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
# No stats service: at shutdown imap-login would wait 5 s for the stats handshake.
stats_writer_socket_path =
auth_verbose = yes
listen = 127.0.0.1
protocols = imap
ssl = required
ssl_cert = <{root}/tls/server.pem
ssl_key = <{root}/tls/server.key
{f"ssl_dh = <{dh}" if dh.exists() else ""}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {peer.imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {peer.imaps_port}
    ssl = yes
  }}
}}
"""


def _master_pid(peer: DovecotPeer) -> int | None:
    return read_pid(peer.root / "run" / "master.pid")


@contextmanager
def running_dovecot(tmp: Path) -> Iterator[DovecotPeer]:
    """Dovecot with everything under `tmp`, which must be short (its sockets live there) and
    reachable by the dovecot, dovenull and nobody users (every parent world-searchable)."""
    binary = system_binary("dovecot", "dovecot-imapd")
    open_to_daemon_users(tmp, "Dovecot")
    account = pwd.getpwnam(MAIL_USER)
    peer = DovecotPeer(tmp, free_port(), free_port())
    write_certificates(tmp / "tls")
    (tmp / "passwd").write_text(f"{peer.user}:{peer.password}\n")
    home = tmp / "home" / peer.user
    home.mkdir(parents=True)
    for folder in (home.parent, home):
        shutil.chown(folder, account.pw_uid, account.pw_gid)
    peer.config.write_text(_config(peer, account.pw_uid, account.pw_gid))
    try:
        # Output to a file, not a pipe: the detached master keeps the descriptors open, and
        # reading a pipe to its end would wait for the server to stop.
        output = tmp / "start.out"
        with output.open("wb") as sink:
            started = subprocess.run([binary, "-c", str(peer.config)], stdout=sink,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     timeout=60, check=False)
        up = started.returncode == 0 and wait_until(
            lambda: listening(peer.imap_port) and listening(peer.imaps_port), 30)
        if not up:
            pytest.fail(f"Dovecot did not start (exit {started.returncode}): "
                        f"{output.read_text(errors='replace')}\nlog:\n{peer.log()}")
        yield peer
    finally:
        _stop(peer)


def _stop(peer: DovecotPeer) -> None:
    pid = _master_pid(peer)
    if pid is None:
        return
    # SIGTERM is what `doveadm stop` sends, without its seconds of polling afterwards.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    await_stopped(pid, "Dovecot", peer.log)


@pytest.fixture(scope="session")
def dovecot_peer() -> Iterator[DovecotPeer]:
    """One private Dovecot for the test session; tests empty the folders they use (see
    `DovecotPeer.folder_messages`) or use folders of their own."""
    root = Path(tempfile.mkdtemp(prefix="ainews-imap-"))
    try:
        with running_dovecot(root) as peer:
            yield peer
    finally:
        shutil.rmtree(root, ignore_errors=True)
