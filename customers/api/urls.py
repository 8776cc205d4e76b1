from django.urls import include, path
from rest_framework.routers import SimpleRouter

from customers.api import views

router = SimpleRouter(trailing_slash=True)
router.register("customers", views.CustomerViewSet, basename="customer")
router.register("outcomes", views.OutcomeViewSet, basename="outcome")

urlpatterns = [
    path("customers/bulk/", views.CustomerBulkView.as_view(), name="customer-bulk"),
    path("", include(router.urls)),
]
