from django.urls import include, path
from rest_framework.routers import DefaultRouter

from customers.api import views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("customers", views.CustomerViewSet, basename="customer")
router.register("outcomes", views.OutcomeViewSet, basename="outcome")

urlpatterns = [
    path("customers/bulk/", views.CustomerBulkView.as_view(), name="customer-bulk"),
    path("", include(router.urls)),
]
