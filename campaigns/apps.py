from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Retention campaigns"

    def ready(self) -> None:
        from campaigns.receivers import settle_follow_ups
        from customers.signals import outcomes_recorded

        outcomes_recorded.connect(settle_follow_ups, dispatch_uid="campaigns.settle_follow_ups")
