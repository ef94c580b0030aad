"""The WSGI application gunicorn serves (`peer_site.wsgi:application`)."""

# mypy: disable-error-code="import-not-found, no-any-unimported, unused-ignore"

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peer_site.settings")
application = get_wsgi_application()
