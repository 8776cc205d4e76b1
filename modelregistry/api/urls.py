from django.urls import include, path
from rest_framework.routers import DefaultRouter

from modelregistry.api import views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("models", views.ModelVersionViewSet, basename="model-version")

urlpatterns = [path("", include(router.urls))]
