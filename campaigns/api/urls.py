from django.urls import include, path
from rest_framework.routers import SimpleRouter

from campaigns.api import views

router = SimpleRouter(trailing_slash=True)
router.register("campaigns", views.CampaignViewSet, basename="campaign")
router.register("campaign-targets", views.CampaignTargetViewSet, basename="campaign-target")

urlpatterns = [path("", include(router.urls))]
