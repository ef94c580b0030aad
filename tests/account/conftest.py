"""Account-flow tests: the app sends its mail to a real SMTP server in the test
process, and each test reads the links out of what that server received."""

from __future__ import annotations

import pytest

from tests.support.mail import SMTPServer, mailbox, mailbox_overrides, smtp_server  # noqa: F401


@pytest.fixture
def settings_overrides(smtp_server: SMTPServer) -> dict[str, object]:  # noqa: F811
    return mailbox_overrides(smtp_server)
