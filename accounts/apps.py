from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts, API keys and audit log"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from accounts import login_policy, schema  # noqa: F401 - schema registers the OpenAPI extension

        user_locked_out.connect(login_policy.on_locked_out, dispatch_uid="accounts.login_policy.locked_out")
        user_login_failed.connect(login_policy.on_admin_login_failed, dispatch_uid="accounts.login_policy.admin_failed")
        user_logged_in.connect(login_policy.on_admin_logged_in, dispatch_uid="accounts.login_policy.admin_logged_in")
