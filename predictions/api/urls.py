from django.urls import include, path
from rest_framework.routers import DefaultRouter

from predictions.api import views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("predictions", views.PredictionViewSet, basename="prediction")

urlpatterns = [
    path("predictions/batch/", views.PredictionBatchView.as_view(), name="prediction-batch"),
    path("", include(router.urls)),
]
