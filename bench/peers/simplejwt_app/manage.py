"""Django's command line for the peer (`migrate`, `createsuperuser --noinput`), as
`django-admin startproject` writes it."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peer_site.settings")
    from django.core.management import execute_from_command_line  # type: ignore[import-not-found]

    execute_from_command_line(sys.argv)
