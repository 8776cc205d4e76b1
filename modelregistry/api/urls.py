from django.urls import include, path
from rest_framework.routers import SimpleRouter

from modelregistry.api import views

router = SimpleRouter(trailing_slash=True)
router.register("models", views.ModelVersionViewSet, basename="model-version")

urlpatterns = [path("", include(router.urls))]
