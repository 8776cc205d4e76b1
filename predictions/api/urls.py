from django.urls import include, path
from rest_framework.routers import SimpleRouter

from predictions.api import views

router = SimpleRouter(trailing_slash=True)
router.register("predictions", views.PredictionViewSet, basename="prediction")

urlpatterns = [
    path("predictions/batch/", views.PredictionBatchView.as_view(), name="prediction-batch"),
    path("", include(router.urls)),
]
