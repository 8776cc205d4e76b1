from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from campaigns import views as staff_views
from churn_platform import health, observability

# Django tries patterns in order: the scoring endpoints, the hot path, come first.
api_v1 = [
    path("", include("predictions.api.urls")),
    path("", include("customers.api.urls")),
    path("", include("accounts.api.urls")),
    path("", include("campaigns.api.urls")),
    path("", include("modelregistry.api.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", observability.metrics_view, name="prometheus-django-metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("staff/", include("campaigns.urls")),
    path("accounts/", include("campaigns.account_urls")),
    path("", staff_views.home, name="home"),
]

handler400 = "churn_infra.exceptions.handler400"
handler403 = "churn_infra.exceptions.handler403"
handler404 = "churn_infra.exceptions.handler404"
handler500 = "churn_infra.exceptions.handler500"
