from django.urls import include, path
from rest_framework.routers import SimpleRouter

from customers.api import ingestion_views, views

router = SimpleRouter(trailing_slash=True)
router.register("customers", views.CustomerViewSet, basename="customer")
router.register("outcomes", views.OutcomeViewSet, basename="outcome")
router.register("ingestions", ingestion_views.IngestionRunViewSet, basename="ingestion")
router.register("data-sources", ingestion_views.DataSourceViewSet, basename="data-source")

urlpatterns = [
    path("customers/bulk/", views.CustomerBulkView.as_view(), name="customer-bulk"),
    path("outcomes/bulk/", views.OutcomeBulkView.as_view(), name="outcome-bulk"),
    path("", include(router.urls)),
]
