from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Retention campaigns"

    def ready(self) -> None:
        from campaigns.erasure import anonymise_campaign_targets
        from campaigns.receivers import settle_follow_ups, unlink_expiring_predictions
        from customers.erasure_signals import customer_erased
        from customers.signals import outcomes_recorded
        from predictions.signals import predictions_expiring

        outcomes_recorded.connect(settle_follow_ups, dispatch_uid="campaigns.settle_follow_ups")
        customer_erased.connect(anonymise_campaign_targets, dispatch_uid="campaigns.anonymise_campaign_targets")
        predictions_expiring.connect(unlink_expiring_predictions, dispatch_uid="campaigns.unlink_expiring_predictions")
