from django.urls import include, path
from rest_framework.routers import SimpleRouter

from predictions.api import jobs, tiers, views

router = SimpleRouter(trailing_slash=True)
# Before "predictions": its detail route would otherwise be tried on "predictions/jobs/".
router.register("predictions/jobs", jobs.BatchJobViewSet, basename="batch-job")
router.register("predictions", views.PredictionViewSet, basename="prediction")
router.register("tiers", tiers.TierViewSet, basename="tier")

urlpatterns = [
    path("predictions/batch/", views.PredictionBatchView.as_view(), name="prediction-batch"),
    path("", include(router.urls)),
]
