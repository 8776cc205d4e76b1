from django.db import migrations

# The contract's recommendation per risk level; operators edit them in the admin afterwards.
DEFAULTS = {
    "low": (["Keep regular engagement."], None),
    "medium": (["Add more touchpoints and send a satisfaction survey."], None),
    "high": (["Enrol in a retention campaign with a 15% discount offer."], "15.00"),
    "critical": (["Urgent personal call from customer success."], None),
}


def create_defaults(apps, schema_editor):
    RiskTierAction = apps.get_model("predictions", "RiskTierAction")
    for level, (texts, offer) in DEFAULTS.items():
        RiskTierAction.objects.get_or_create(
            risk_level=level, defaults={"recommendations": texts, "offer_discount_percent": offer}
        )


class Migration(migrations.Migration):
    dependencies = [("predictions", "0001_initial")]
    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
