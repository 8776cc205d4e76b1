from django.urls import include, path
from rest_framework.routers import SimpleRouter

from modelregistry.api import views

router = SimpleRouter(trailing_slash=True)
# Before "models": its detail route would otherwise take "retraining-runs" for a version label.
router.register("models/retraining-runs", views.RetrainingRunViewSet, basename="retraining-run")
router.register("models/trigger-evaluations", views.TriggerEvaluationViewSet, basename="trigger-evaluation")
router.register("models", views.ModelVersionViewSet, basename="model-version")

urlpatterns = [path("", include(router.urls))]
