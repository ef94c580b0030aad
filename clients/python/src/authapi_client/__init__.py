"""authapi-client: httpx authentication for services that call APIs behind authapi.

    auth = AuthapiAuth("https://auth.example.com/token", username=..., password=...)
    async with httpx.AsyncClient(auth=auth) as http:  # or httpx.Client(auth=auth)
        await http.get("https://api.example.com/things")

The names below are the public surface; the modules beginning with `_` are not.
"""

from authapi_client._auth import AuthapiAuth
from authapi_client._errors import AuthapiError, AuthapiMfaRequired, AuthapiUnavailable
from authapi_client._version import __version__

__all__ = [
    "AuthapiAuth",
    "AuthapiError",
    "AuthapiMfaRequired",
    "AuthapiUnavailable",
    "__version__",
]
