"""A private Postfix on 127.0.0.1: Debian's binaries (./scripts/test installs them), its own
config, queue and data folders in a throwaway directory, smtpd on a free port, nothing relayed
anywhere. Mail for news.example and readers.example lands in Maildirs under the directory, so
tests see what a real MTA delivers and, above all, the DSNs it writes itself:

- ada@readers.example, bob@readers.example: existing readers (delivered);
- any other user at readers.example: accepted, then bounced by Postfix (5.1.1 user unknown);
- full@readers.example: a soft failure (4.2.2 mailbox full) that, with no queue lifetime, comes
  straight back as a DSN with Action: failed;
- bounces@news.example (and bounces+TAG@news.example, through recipient_delimiter): the
  bounce mailbox those DSNs reach when a message was sent with a VERP envelope sender.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.peers import (
    await_stopped,
    free_port,
    listening,
    open_to_daemon_users,
    read_pid,
    system_binary,
    wait_until,
)

MAILBOXES = {
    "bounces@news.example": "news.example/bounces/",
    "ada@readers.example": "readers.example/ada/",
    "bob@readers.example": "readers.example/bob/",
}
# Delivery runs as this user (virtual(8) refuses root); the test process, root, reads anyway.
MAIL_USER = "nobody"




@dataclass
class PostfixPeer:
    root: Path
    port: int
    host: str = "127.0.0.1"

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    def maildir(self, address: str) -> Path:
        """The Maildir folder of one of MAILBOXES (it appears with the first delivery)."""
        return self.root / "mail" / MAILBOXES[address.lower()]

    def wait_for_mail(self, folder: Path, count: int, timeout: float = 30) -> list[Path]:
        """The message files in Maildir `folder` (new/ and cur/, oldest name first) once there
        are at least `count`; fails with the maillog after `timeout` seconds."""
        def files() -> list[Path]:
            return sorted((path for sub in ("new", "cur") if (folder / sub).is_dir()
                           for path in (folder / sub).iterdir() if path.is_file()),
                          key=lambda path: path.name)

        if not wait_until(lambda: len(files()) >= count, timeout, step=0.1):
            pytest.fail(f"{len(files())} of {count} messages in {folder} after {timeout} s; "
                        f"Postfix's log:\n{self.log()}")
        return files()

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else "(no maillog written)"


def _main_cf(root: Path, mail_uid: int, mail_gid: int) -> str:
    return f"""\
compatibility_level = 3.6
mail_owner = postfix
setgid_group = postdrop
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.news.example
mydomain = news.example
myorigin = news.example
mydestination =
relayhost =
mynetworks = 127.0.0.0/8
default_transport = error:nothing leaves this test
local_transport = error:no local delivery in this test
alias_maps =
alias_database =
local_recipient_maps =
virtual_mailbox_domains = news.example, readers.example
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = texthash:{root}/etc/vmailbox
virtual_uid_maps = static:{mail_uid}
virtual_gid_maps = static:{mail_gid}
virtual_minimum_uid = 1
transport_maps = texthash:{root}/etc/transport
recipient_delimiter = +
smtpd_reject_unlisted_recipient = no
maximal_queue_lifetime = 0
bounce_queue_lifetime = 0
delay_warning_time = 0h
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
in_flow_delay = 0
smtputf8_enable = no
biff = no
smtpd_banner = $myhostname ESMTP private test Postfix
"""


def _master_cf(port: int) -> str:
    # Debian's services, none chrooted (the chroot would need copies of /etc files).
    services = [
        f"127.0.0.1:{port} inet n - n - - smtpd",
        "pickup unix n - n 60 1 pickup",
        "cleanup unix n - n - 0 cleanup",
        "qmgr unix n - n 300 1 qmgr",
        "rewrite unix - - n - - trivial-rewrite",
        "bounce unix - - n - 0 bounce",
        "defer unix - - n - 0 bounce",
        "trace unix - - n - 0 bounce",
        "verify unix - - n - 1 verify",
        "flush unix n - n 1000? 0 flush",
        "proxymap unix - - n - - proxymap",
        "showq unix n - n - - showq",
        "error unix - - n - - error",
        "retry unix - - n - - error",
        "discard unix - - n - - discard",
        "virtual unix - n n - - virtual",
        "anvil unix - - n - 1 anvil",
        "scache unix - - n - 1 scache",
        "postlog unix-dgram n - n - 1 postlogd",
    ]
    return "\n".join(services) + "\n"


def _postfix(binary: str, config_dir: Path, command: str) -> str:
    """Run `postfix -c DIR command` under a pseudo-terminal: Postfix prints its fatal errors
    only to a terminal (or syslog), and the failure message should show them."""
    result = subprocess.run(["script", "-qec", f"{binary} -c {config_dir} {command}",
                             "/dev/null"], capture_output=True, text=True, timeout=120,
                            check=False, stdin=subprocess.DEVNULL)
    return f"exit {result.returncode}: {result.stdout}{result.stderr}".strip()


def _master_pid(root: Path) -> int | None:
    return read_pid(root / "queue" / "pid" / "master.pid")


@contextmanager
def running_postfix(tmp: Path) -> Iterator[PostfixPeer]:
    """Postfix with everything under `tmp`, which the postfix and nobody users must be able
    to reach (every parent world-searchable: pytest's tmp_path is not, a mkdtemp in /tmp is)."""
    binary = system_binary("postfix", "postfix")
    open_to_daemon_users(tmp, "Postfix")
    account = pwd.getpwnam(MAIL_USER)
    port = free_port()
    config_dir, mail = tmp / "etc", tmp / "mail"
    config_dir.mkdir()
    mail.mkdir()
    # The queue's top folder belongs to root; `postfix start` (post-install create-missing)
    # makes its subfolders and the data folder with the owners Postfix wants.
    (tmp / "queue").mkdir(mode=0o755)
    os.chown(mail, account.pw_uid, account.pw_gid)
    (config_dir / "main.cf").write_text(_main_cf(tmp, account.pw_uid, account.pw_gid))
    (config_dir / "master.cf").write_text(_master_cf(port))
    (config_dir / "vmailbox").write_text(
        "".join(f"{address} {path}\n" for address, path in MAILBOXES.items()))
    (config_dir / "transport").write_text("full@readers.example retry:4.2.2 Mailbox full\n")
    peer = PostfixPeer(tmp, port)
    try:
        output = _postfix(binary, config_dir, "start")
        up = wait_until(lambda: _master_pid(tmp) is not None and listening(port), 30)
        if not up:
            pytest.fail(f"Postfix did not start on 127.0.0.1:{port}: {output}\n"
                        f"maillog:\n{peer.log()}")
        yield peer
    finally:
        _stop(binary, peer)


def _stop(binary: str, peer: PostfixPeer) -> None:
    pid = _master_pid(peer.root)
    if pid is None:
        return
    _postfix(binary, peer.config_dir, "stop")
    # `postfix stop` signals the master and returns; the master takes its children down.
    await_stopped(pid, "Postfix", peer.log)


@pytest.fixture(scope="session")
def postfix_peer() -> Iterator[PostfixPeer]:
    """One private Postfix for the test session: tests use their own addresses or VERP tags
    and count the files they expect, since Maildirs are shared between them."""
    root = Path(tempfile.mkdtemp(prefix="ainews-postfix-"))
    try:
        with running_postfix(root) as peer:
            yield peer
    finally:
        shutil.rmtree(root, ignore_errors=True)
