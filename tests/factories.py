from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from accounts.models import Department, Membership
from customers.models import Customer


class DepartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Department
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"department-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def department(self, create, extracted, **kwargs):  # type: ignore[no-untyped-def]
        if create and extracted is not None:
            Membership.objects.create(user=self, department=extracted)
        if create:
            self.save()


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer
        django_get_or_create = ("customer_id",)

    customer_id = factory.Sequence(lambda n: f"C-{n:06d}")
    gender = "female"
    senior_citizen = False
    partner = True
    dependents = False
    tenure_months = 12
    phone_service = True
    multiple_lines = "No"
    internet_service = "Fiber optic"
    online_security = "No"
    online_backup = "No"
    device_protection = "No"
    tech_support = "No"
    streaming_tv = "Yes"
    streaming_movies = "Yes"
    contract_type = "Month-to-month"
    paperless_billing = True
    payment_method = "Electronic check"
    monthly_charges = 85.0
    total_charges = factory.LazyAttribute(lambda c: round(c.tenure_months * c.monthly_charges, 2))
    source = "factory"


def record(**overrides):  # type: ignore[no-untyped-def]
    """A valid customer record in the contract's JSON shape."""
    base = {
        "customer_id": "C-1",
        "gender": "female",
        "senior_citizen": False,
        "partner": True,
        "dependents": False,
        "tenure_months": 12,
        "phone_service": True,
        "multiple_lines": "No",
        "internet_service": "Fiber optic",
        "online_security": "No",
        "online_backup": "No",
        "device_protection": "No",
        "tech_support": "No",
        "streaming_tv": "Yes",
        "streaming_movies": "Yes",
        "contract_type": "Month-to-month",
        "paperless_billing": True,
        "payment_method": "Electronic check",
        "monthly_charges": 85.0,
        "total_charges": 1020.0,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}
