from django.urls import include, path
from rest_framework.routers import DefaultRouter

from campaigns.api import views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("campaigns", views.CampaignViewSet, basename="campaign")
router.register("campaign-targets", views.CampaignTargetViewSet, basename="campaign-target")

urlpatterns = [path("", include(router.urls))]
