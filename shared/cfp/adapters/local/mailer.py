"""Mailer that delivers to files: one RFC 5322 `.eml` message per file under `<data-dir>/outbox/`,
readable by any mail client, by `cat`, or by a test with `email.parser`."""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from cfp.errors import BadRequest

DEFAULT_SENDER = "CFP <no-reply@cfp.localhost>"


class OutboxMailer:
    """Writes each message atomically (mode 0600: a message may carry a one-time token) as
    `{epoch-ns}-{random}.eml`, so a directory listing sorts in sending order."""

    def __init__(self, directory: Path, *, sender: str = DEFAULT_SENDER) -> None:
        self.directory = Path(directory)
        self.sender = sender

    async def send(self, to: str, subject: str, text: str) -> None:
        if any(c in to + subject for c in "\r\n"):
            raise BadRequest("a mail recipient or subject has no line breaks")
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain="cfp.localhost")
        message.set_content(text)
        await asyncio.to_thread(self._write, message.as_bytes())

    def _write(self, body: bytes) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{secrets.token_hex(4)}.eml"
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
        try:
            os.chmod(tmp, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.directory / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.directory / name

    def messages(self) -> list[Path]:
        """The delivered messages, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*.eml"))
