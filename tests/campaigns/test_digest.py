"""The daily digest e-mail: new assignments, overdue follow-ups, customers whose risk rose, with an opt-out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from campaigns.digest import digests_send
from tests.campaigns.factories import CampaignFactory, PredictionFactory, TargetFactory, scored_customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def work(department, staff_user):
    staff_user.email = "operator@example.com"
    staff_user.save()
    campaign = CampaignFactory(department=department, status="active", name="Digest")
    fresh = TargetFactory(campaign=campaign, customer=scored_customer("DG-NEW", 0.65), assignee=staff_user)
    late = TargetFactory(campaign=campaign, customer=scored_customer("DG-LATE", 0.65), assignee=staff_user,
                         due_date=timezone.localdate() - timedelta(days=2))
    late.created_at = timezone.now() - timedelta(days=5)
    late.save()
    rose = TargetFactory(campaign=campaign, customer=scored_customer("DG-ROSE", 0.65), assignee=staff_user,
                         qualifying_risk_level="high")
    rose.created_at = timezone.now() - timedelta(days=5)
    rose.save()
    PredictionFactory(customer_id="DG-ROSE", churn_probability=0.91)  # now critical
    return fresh, late, rose


def test_the_digest_lists_new_overdue_and_riskier_follow_ups_once_a_day(work, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    assert digests_send() == 1

    message = mail.outbox[0]
    assert message.to == ["operator@example.com"]
    body = message.body
    new = body[body.index("New for you"):body.index("Overdue")]
    overdue = body[body.index("Overdue"):body.index("Risk rose")]
    assert "DG-NEW" in new
    assert "DG-LATE" not in new  # assigned five days ago
    assert "DG-LATE" in overdue
    assert "DG-ROSE: high -> critical" in body
    assert "/staff/settings/" in message.body
    assert digests_send() == 0  # already sent today


def test_a_staff_member_can_opt_out(client, staff_user, work, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    client.force_login(staff_user)

    client.post("/staff/settings/", {})  # the box unticked

    assert digests_send() == 0
    assert mail.outbox == []
    assert 'data-role="daily-digest"' in client.get("/staff/settings/").content.decode()


def test_the_digest_is_scheduled_daily():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="campaigns.tasks.send_daily_digests")
    assert (task.crontab.hour, task.crontab.minute) == ("6", "30")
