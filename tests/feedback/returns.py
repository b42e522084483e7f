"""Bounce and complaint messages written for the tests: what a receiving system sends back
to our return path about a message we sent. Shapes follow RFC 3464 (DSN) and RFC 5965
(ARF); the words are ours. Built as text, the way MTAs write them."""

from __future__ import annotations


def returned_headers(original: bytes, drop: tuple[str, ...] = ()) -> str:
    """The header block of a message we sent, as a report quotes it."""
    head = original.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode("utf-8", "replace")
    lines: list[str] = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += "\n" + line
        else:
            lines.append(line)
    return "\n".join(line for line in lines
                     if line.split(":", 1)[0].lower() not in {name.lower() for name in drop})


def dsn(to: str, recipient: str, status: str = "5.1.1", action: str = "failed",
        diagnostic: str = "550 5.1.1 <{r}>: Recipient address rejected: no such user",
        original: bytes | None = None, message_id: str = "<dsn-1@mx.readers.example>") -> bytes:
    """A DSN from a relay that took our message and then could not deliver it."""
    said = diagnostic.format(r=recipient)
    returned = ("" if original is None else
                "--RPT\nContent-Type: text/rfc822-headers\n\n"
                f"{returned_headers(original)}\n\n")
    return f"""\
From: Mail Delivery System <MAILER-DAEMON@mx.readers.example>
To: {to}
Subject: Undelivered Mail Returned to Sender
Message-ID: {message_id}
Date: Mon, 23 Nov 2026 09:14:03 +0000
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="RPT"

--RPT
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.readers.example.

Your message could not be delivered to one or more recipients.

<{recipient}>: {said}

--RPT
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.readers.example

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822; {recipient}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {said}

{returned}--RPT--
""".encode()


def arf(to: str, original: bytes, recipient: str | None = None, feedback_type: str = "abuse",
        message_id: str = "<fbl-1@feedback.mailbox.example>") -> bytes:
    """An ARF feedback-loop report; `recipient` None: the provider blanked the reader out."""
    rcpt = f"Original-Rcpt-To: {recipient}\n" if recipient else ""
    headers = returned_headers(original, drop=() if recipient else ("To",))
    return f"""\
From: Feedback Loop <fbl@feedback.mailbox.example>
To: {to}
Subject: Email Feedback Report for IP 192.0.2.25
Message-ID: {message_id}
Date: Tue, 24 Nov 2026 18:02:41 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="FBL"

--FBL
Content-Type: text/plain; charset=us-ascii

A reader of this mailbox marked the attached message as spam.

--FBL
Content-Type: message/feedback-report

Feedback-Type: {feedback_type}
User-Agent: ExampleFBL/2.1
Version: 1
Source-IP: 192.0.2.25
{rcpt}
--FBL
Content-Type: text/rfc822-headers

{headers}

--FBL--
""".encode()


def out_of_office(to: str, sender: str) -> bytes:
    return f"""\
From: {sender}
To: {to}
Subject: Automatic reply: AI News Weekly
Message-ID: <ooo-1@readers.example>
Date: Tue, 24 Nov 2026 08:00:00 +0000
Content-Type: text/plain; charset=us-ascii

I am away until Monday 7 December with no access to email.
""".encode()


READER = "reader@example.com"


def prose_bounce(body: bytes = b"", headers: bytes = b"") -> bytes:
    """A Postfix-like prose bounce for READER with `body` after its notice (issue 27's
    hostile shapes go there) and `headers` before its Subject."""
    return (b"From: MAILER-DAEMON@mx.example\nTo: bounces@news.example\n" + headers +
            b"Subject: Undelivered Mail Returned to Sender\n\n"
            b"I'm sorry to have to inform you that your message could not be delivered.\n\n"
            b"<" + READER.encode() + b">: 550 5.1.1 user unknown\n\n" + body + b"\n")


def nested(depth: int) -> bytes:
    """A message of `depth` multiparts, each inside the one before."""
    out = b"From: a@b.example\nContent-Type: multipart/mixed; boundary=b0\n\n"
    for level in range(1, depth):
        out += b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (level - 1, level)
    out += b"--b%d\nContent-Type: text/plain\n\nhi\n" % (depth - 1)
    return out + b"".join(b"--b%d--\n" % level for level in reversed(range(depth)))
