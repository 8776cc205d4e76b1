"""Session login for the staff pages, mounted at /accounts/ (LOGIN_URL is /accounts/login/)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from accounts.views import StaffLoginView

urlpatterns = [
    path("login/", StaffLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
]
