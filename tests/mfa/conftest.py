"""Second-factor tests: the app mails its notices to a real SMTP server in the test
process."""

from __future__ import annotations

import pytest

from tests.support.mail import SMTPServer, mailbox, mailbox_overrides, smtp_server  # noqa: F401


@pytest.fixture
def settings_overrides(smtp_server: SMTPServer) -> dict[str, object]:  # noqa: F811
    # The per-account code limit is a test of its own (test_codes.py): here it is out
    # of the way of tests that send many codes.
    return {**mailbox_overrides(smtp_server), "rate_limit_otp": "1000/minute"}
