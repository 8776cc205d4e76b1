from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    name = "predictions"
    verbose_name = "Predictions"

    def ready(self) -> None:
        from customers.erasure_signals import customer_erased
        from predictions.erasure import erase_prediction_inputs

        customer_erased.connect(erase_prediction_inputs, dispatch_uid="predictions.erase_prediction_inputs")

        from customers.ports import register_latest_prediction_reader
        from customers.signals import outcomes_recorded
        from modelregistry.ports import register_prediction_reader
        from predictions.live_performance import schedule_refresh
        from predictions.readers import PredictionReader, latest_prediction_payload

        # The registry and customers read predictions through these interfaces (they may not import this app).
        register_prediction_reader(PredictionReader())
        register_latest_prediction_reader(latest_prediction_payload)
        outcomes_recorded.connect(schedule_refresh, dispatch_uid="predictions.live_performance")
