"""A campaign target's prediction link loses its database constraint.

predictions 0008 partitions the predictions table on PostgreSQL; a foreign key could then only
reference its whole primary key (id, created_at), and the old table can only be dropped once
nothing references it. So this runs before that migration (campaigns is the higher layer: the
ordering is stated here, predictions knows nothing of campaigns).
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('campaigns', '0009_campaigntarget_customer_erasable'),
        ('predictions', '0007_prediction_json_as_text'),
    ]

    run_before = [
        ('predictions', '0008_partitioned_by_month'),
    ]

    operations = [
        migrations.AlterField(
            model_name='campaigntarget',
            name='prediction',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='predictions.prediction'),
        ),
    ]
