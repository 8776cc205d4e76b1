from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Retention campaigns"

    def ready(self) -> None:
        from campaigns.erasure import anonymise_campaign_targets
        from campaigns.receivers import settle_follow_ups
        from customers.erasure_signals import customer_erased
        from customers.signals import outcomes_recorded

        outcomes_recorded.connect(settle_follow_ups, dispatch_uid="campaigns.settle_follow_ups")
        customer_erased.connect(anonymise_campaign_targets, dispatch_uid="campaigns.anonymise_campaign_targets")
