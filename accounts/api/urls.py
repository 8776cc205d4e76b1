from django.urls import include, path
from rest_framework.routers import SimpleRouter
from rest_framework_simplejwt.views import TokenRefreshView

from accounts.api import views

router = SimpleRouter(trailing_slash=True)
router.register("api-keys", views.ApiKeyViewSet, basename="api-key")
router.register("audit-log", views.AuditLogViewSet, basename="audit-log")

urlpatterns = [
    path("auth/token/", views.TokenObtainView.as_view(), name="token-obtain"),
    path("auth/token/refresh/", TokenRefreshView.as_view(), name="token-refresh"),
    path("auth/logout/", views.LogoutView.as_view(), name="token-logout"),
    path("auth/whoami/", views.WhoAmIView.as_view(), name="whoami"),
    path("", include(router.urls)),
]
