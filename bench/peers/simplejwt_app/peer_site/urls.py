"""The peer's routes: simplejwt's token views as its documentation wires them, the
current user (`GET /users/me`, as authapi's), and `/healthz` for the bench's
readiness check."""

# mypy: disable-error-code="import-not-found, misc, no-any-unimported, unused-ignore"

from django.http import HttpRequest, JsonResponse
from django.urls import path
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView


class CurrentUser(APIView):
    """The user of the access token; JWTAuthentication reads it from the database."""

    authentication_classes = [JWTAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        user = request.user
        return Response({"id": user.pk, "username": user.username, "email": user.email})


def healthz(_request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("api/token/", TokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("api/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("users/me", CurrentUser.as_view(), name="current_user"),
    path("healthz", healthz),
]
