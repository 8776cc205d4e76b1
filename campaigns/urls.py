"""The staff pages, mounted at /staff/."""

from django.urls import path

from campaigns import views

app_name = "staff"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("follow-ups/", views.follow_ups, name="follow-ups"),
    path("follow-ups/export.csv", views.follow_ups_export, name="follow-ups-export"),
    path("follow-ups/bulk/", views.follow_ups_bulk, name="follow-ups-bulk"),
    path("views/", views.saved_view_create, name="saved-view-create"),
    path("views/<int:view_id>/delete/", views.saved_view_remove, name="saved-view-delete"),
    path("follow-ups/<int:target_id>/update/", views.follow_up_update, name="follow-up-update"),
    path("follow-ups/<int:target_id>/step/", views.follow_up_step_done, name="follow-up-step"),
    path("session/", views.staff_session, name="session"),
    path("settings/", views.staff_settings, name="settings"),
    path("customers/", views.customer_search, name="customer-search"),
    path("customers/<str:customer_id>/", views.customer_detail, name="customer"),
    path("campaigns/", views.campaigns, name="campaigns"),
    path("campaigns/new/", views.campaign_new, name="campaign-new"),
    path("campaigns/<int:campaign_id>/", views.campaign_detail, name="campaign"),
    path("campaigns/<int:campaign_id>/enrol/", views.campaign_enrol_view, name="campaign-enrol"),
    path("campaigns/<int:campaign_id>/close/", views.campaign_close_view, name="campaign-close"),
    path("campaigns/<int:campaign_id>/preview/", views.campaign_preview_view, name="campaign-preview"),
    path("campaigns/<int:campaign_id>/targets.csv", views.campaign_targets_export, name="campaign-targets-export"),
    path(
        "campaigns/<int:campaign_id>/assignees.csv", views.campaign_assignees_export, name="campaign-assignees-export"
    ),
]
