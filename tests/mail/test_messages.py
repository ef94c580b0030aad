"""The templates: every mail the flows need renders, as plain text and HTML, and a
folder of a team's own replaces them."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from authapi.config import Settings
from authapi.mail.messages import MailTemplate, compose, expires_in, render
from tests.support.clock import FakeClock

# What each mail needs beyond app_name and email (messages.MailTemplate's comments).
VARIABLES: dict[MailTemplate, dict[str, str]] = {
    MailTemplate.VERIFY_EMAIL: {"link": "https://app.example/v#ev_1", "expires_in": "24 hours"},
    MailTemplate.CONFIRM_EMAIL_CHANGE: {
        "link": "https://app.example/v#ev_2",
        "expires_in": "24 hours",
        "new_email": "new@example.com",
    },
    MailTemplate.EMAIL_CHANGED: {"new_email": "new@example.com"},
    MailTemplate.PASSWORD_RESET: {"link": "https://app.example/r#pr_3", "expires_in": "30 minutes"},
    MailTemplate.PASSWORD_CHANGED: {},
    MailTemplate.ACCOUNT_DELETED: {},
    MailTemplate.RECOVERY_CODE_USED: {"remaining": "9"},
    MailTemplate.SECOND_FACTORS_OFF: {"by_whom": "an administrator"},
}


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, **overrides)  # type: ignore[arg-type]


class TestTemplates:
    @pytest.mark.parametrize("template", list(MailTemplate))
    def test_every_mail_renders_with_its_variables(
        self, tmp_path: Path, template: MailTemplate
    ) -> None:
        settings = settings_for(tmp_path, mail_app_name="Acme", mail_from="Acme <no@acme.example>")
        mail = compose(
            settings, template, "old@example.com", FakeClock().now(), **VARIABLES[template]
        )
        assert isinstance(mail, EmailMessage)
        assert "Acme" in str(mail["Subject"])
        assert mail["From"] == "Acme <no@acme.example>"
        assert str(mail["Message-ID"]).endswith("@acme.example>")
        for kind in ("plain", "html"):
            part = mail.get_body((kind,))
            assert part is not None
            content = part.get_content()
            assert "$" not in content  # no variable left unfilled
            for value in VARIABLES[template].values():
                assert value in content

    def test_a_missing_variable_fails_loudly(self, tmp_path: Path) -> None:
        with pytest.raises(KeyError):
            render(settings_for(tmp_path), MailTemplate.PASSWORD_RESET, "a@example.com")

    def test_values_are_escaped_in_html_only(self, tmp_path: Path) -> None:
        _subject, text, html = render(
            settings_for(tmp_path, mail_app_name="<b>Acme</b>"),
            MailTemplate.PASSWORD_CHANGED,
            "a@example.com",
        )
        assert "<b>Acme</b>" in text
        assert "&lt;b&gt;Acme&lt;/b&gt;" in html
        assert "<b>Acme</b>" not in html

    def test_a_folder_replaces_them_file_by_file(self, tmp_path: Path) -> None:
        folder = tmp_path / "brand"
        folder.mkdir()
        (folder / "password_changed.txt").write_text("Acme: new password\n\nHi ${email}!\n")
        settings = settings_for(tmp_path, mail_templates_dir=folder)
        subject, text, html = render(settings, MailTemplate.PASSWORD_CHANGED, "a@example.com")
        assert (subject, text) == ("Acme: new password", "Hi a@example.com!\n")
        assert "signed in with the old one were signed out" in html  # the package's own HTML part
        _s, other, _h = render(settings, MailTemplate.ACCOUNT_DELETED, "a@example.com")
        assert "was deleted" in other


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (1800, "30 minutes"),
        (86400, "1 day"),
        (7200, "2 hours"),
        (60, "1 minute"),
        (90, "2 minutes"),
    ],
)
def test_expires_in(seconds: int, said: str) -> None:
    assert expires_in(seconds) == said


class TestEncoding:
    LINK = "http://localhost:8000/email/verify#token=ev_" + "A" * 43

    def test_an_ascii_mail_keeps_its_link_whole_in_the_raw_text(self, tmp_path: Path) -> None:
        message = compose(
            settings_for(tmp_path),
            MailTemplate.VERIFY_EMAIL,
            "alice@example.com",
            FakeClock().now(),
            link=self.LINK,
            expires_in="1 day",
        )
        assert self.LINK in message.as_string()

    def test_other_text_is_quoted_printable(self, tmp_path: Path) -> None:
        message = compose(
            settings_for(tmp_path, mail_app_name="Zoë's app"),
            MailTemplate.VERIFY_EMAIL,
            "zoë@example.com",
            FakeClock().now(),
            link=self.LINK,
            expires_in="1 day",
        )
        plain = message.get_body(("plain",))
        assert plain is not None
        assert plain["Content-Transfer-Encoding"] == "quoted-printable"
        assert self.LINK in plain.get_content()
