"""Staff pages: dashboard, my follow-ups, a customer, campaigns, and the one-step follow-up form.

Over 500 lines on purpose: the staff pages' thin adapters, one per URL of campaigns/urls.py, sharing
the staff check and the htmx helpers; what they read and write lives in selectors/ and services/.

For users who are Django staff or in the "staff" group; anyone else is sent to the login page.
Views only read through selectors and write through one service; every list is built from a
fixed number of queries (tests/campaigns/test_pages.py counts them).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import login as auth_login
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.db.models import Case, F, Prefetch, When
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse, QueryDict
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.context import actor_for_request
from accounts.models import Department
from accounts.services import Actor
from campaigns import charts
from campaigns.digest import digest_preference_set
from campaigns.exports import assignee_csv_rows, csv_response, targets_csv_rows
from campaigns.forms import BulkFollowUpForm, CampaignForm, EnrolForm, FollowUpFilterForm, FollowUpForm
from campaigns.models import (
    CampaignStatus,
    CampaignTarget,
    DigestPreference,
    FollowUpStatus,
    TargetGroup,
    TargetNote,
    TargetOutcome,
)
from campaigns.selectors.access import (
    assignable_users,
    campaign_get,
    campaign_list,
    campaign_list_with_counts,
    campaign_target_get,
    campaign_target_list,
    staff_by_department,
    staff_user_ids,
    user_is_staff_member,
)
from campaigns.selectors.audience import campaign_audience, campaign_save_rate, projection_as_dict
from campaigns.selectors.customer import customer_overview, customer_timeline
from campaigns.selectors.dashboard import open_follow_ups, population_stats
from campaigns.selectors.effectiveness import campaign_effectiveness, campaign_results
from campaigns.selectors.follow_ups import FollowUpFilters, follow_up_list, saved_views, with_current_risk
from campaigns.services.common import CampaignError, NotVisible
from campaigns.services.follow_ups import (
    campaign_target_step_done,
    campaign_target_update,
    campaign_targets_bulk_change,
    saved_view_delete,
    saved_view_save,
)
from campaigns.services.lifecycle import campaign_close, campaign_create, campaign_enrol
from customers.models import Customer

PAGE_SIZE = 25
SEARCH_LIMIT = 20
# Work first: treatment follow-ups by due date and risk; the control group's "do not contact" cards last.
TREATMENT_FIRST = (
    Case(When(group=TargetGroup.CONTROL, then=1), default=0),
    F("due_date").asc(nulls_last=True),
    "-qualifying_probability",
    "pk",
)
RISK_CLASSES = {"low": "low", "medium": "medium", "high": "high", "critical": "critical", "unscored": "unscored"}
STATUS_CLASSES = {
    FollowUpStatus.TO_DO: "todo",
    FollowUpStatus.CONTACTED: "contacted",
    FollowUpStatus.OFFER_ACCEPTED: "accepted",
    FollowUpStatus.OFFER_DECLINED: "declined",
    FollowUpStatus.UNREACHABLE: "unreachable",
    FollowUpStatus.DO_NOT_CONTACT: "dnc",
}


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not user_is_staff_member(request.user):
            if _is_htmx(request):
                # htmx would follow a redirect and swap the whole login page into the card, dropping what
                # was typed; a 401 is not swapped, and staff.js offers a sign-in in place instead.
                response = HttpResponse("Your session has ended. Sign in again to save.", status=401)
                response["HX-Reswap"] = "none"
                return response
            if request.user.is_authenticated:
                messages.warning(request, "This account has no access to the staff pages. Log in as a staff member.")
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        return view(request, *args, **kwargs)

    return wrapper



def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return fallback


def _cards(targets: list[CampaignTarget], staff: dict[int, list[tuple[int, str]]]) -> list[dict[str, Any]]:
    return [
        {
            "target": t,
            "staff": staff.get(t.campaign.department_id, []),
            "status_class": STATUS_CLASSES[t.follow_up_status],
            "statuses": FollowUpStatus.choices,
            "outcomes": TargetOutcome.choices,
        }
        for t in targets
    ]


def _with_recent_notes(qs: Any) -> Any:
    return qs.prefetch_related(Prefetch("notes", queryset=TargetNote.objects.order_by("-created_at", "-pk")))


# --- dashboard ------------------------------------------------------------------------------------


@require_GET
@staff_required
def dashboard(request: HttpRequest) -> HttpResponse:
    actor = actor_for_request(request)
    population = population_stats()
    risk = population.risk
    work = open_follow_ups(actor=actor)
    results = campaign_results(actor=actor)
    context = {
        "population": population,
        "risk_chart": charts.horizontal_bars(
            [
                (level.capitalize(), risk[level], RISK_CLASSES[level])
                for level in ("critical", "high", "medium", "low", "unscored")
            ],
            title="Customers by risk level (latest prediction)",
        ),
        "new_high_chart": charts.stacked_columns(
            [(day.strftime("%d %b"), (high, critical)) for day, high, critical in population.new_high],
            series=[("High", "high"), ("Critical", "critical")],
            title="New high and critical risk customers per day, last 30 days",
        ),
        "work": work,
        "work_chart": charts.horizontal_bars(
            [
                (FollowUpStatus(s).label, work.by_status[s], STATUS_CLASSES[s])
                for s in FollowUpStatus
                if s != FollowUpStatus.DO_NOT_CONTACT
            ],
            title="Follow-ups in active campaigns by status",
        ),
        "results": results,
        "results_chart": charts.grouped_bars(
            [
                (
                    r.campaign.name,
                    [
                        ("Treatment", r.treatment.retention_rate, "treatment"),
                        ("Control", r.control.retention_rate, "control"),
                    ],
                )
                for r in results
            ],
            title="Retention rate, treatment vs control",
        )
        if results
        else None,
    }
    return render(request, "staff/dashboard.html", context)


# --- my follow-ups --------------------------------------------------------------------------------


def _follow_up_filters(request: HttpRequest, actor: Actor) -> tuple[FollowUpFilterForm, FollowUpFilters]:
    """The follow-up list's filters from the query string: one reading for the page, the export and bulk work."""
    campaigns = list(campaign_list(actor=actor).exclude(status=CampaignStatus.DRAFT).values_list("pk", "name"))
    query = request.GET if request.method == "GET" else QueryDict(request.POST.get("query", ""))
    form = FollowUpFilterForm(query or None, campaigns=campaigns)
    data = form.cleaned_data if form.is_valid() else {}
    filters = FollowUpFilters(
        assignee=data.get("assignee") or "me",
        status=data.get("status") or "open",
        campaign_id=data.get("campaign"),
        risk_level=data.get("risk_level") or "",
        due=data.get("due") or "",
        outcome=data.get("outcome") or "",
        search=data.get("q") or "",
        sort=data.get("sort") or "due",
    )
    return form, filters


def _list_query(request: HttpRequest) -> str:
    """The list's query string without the page number: what a saved view or an export keeps."""
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


@require_GET
@staff_required
def follow_ups(request: HttpRequest) -> HttpResponse:
    actor = actor_for_request(request)
    form, filters = _follow_up_filters(request, actor)
    page = Paginator(_with_recent_notes(follow_up_list(actor=actor, filters=filters)), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    targets = list(page.object_list)
    staff = staff_by_department({t.campaign.department_id for t in targets})
    query = _list_query(request)
    return render(
        request,
        "staff/follow_ups.html",
        {
            "form": form,
            "filters": filters,
            "page": page,
            "cards": _cards(targets, staff),
            "today": timezone.localdate(),
            "statuses": [(v, label) for v, label in FollowUpStatus.choices if v != FollowUpStatus.DO_NOT_CONTACT],
            "staff_choices": _assignable_everywhere(actor),
            "query": query,
            "views": saved_views(user=request.user),
            "bulk_selectable": True,
        },
    )


@require_GET
@staff_required
def follow_ups_export(request: HttpRequest) -> HttpResponse:
    """The follow-up list as filtered on the page, every row (not one page), as CSV."""
    actor = actor_for_request(request)
    _, filters = _follow_up_filters(request, actor)
    return csv_response(targets_csv_rows(follow_up_list(actor=actor, filters=filters)), "follow-ups.csv")


@require_POST
@staff_required
def follow_ups_bulk(request: HttpRequest) -> HttpResponse:
    """Bulk work: assign, set the status or the due date of the selected follow-ups, or of the whole filter."""
    actor = actor_for_request(request)
    form = BulkFollowUpForm(request.POST, staff=_assignable_everywhere(actor))
    back = reverse("staff:follow-ups") + ("?" + request.POST.get("query", "") if request.POST.get("query") else "")
    if not form.is_valid():
        for field, problems in form.errors.items():
            messages.error(request, f"{field.replace('_', ' ')}: {' '.join(problems)}")
        return HttpResponseRedirect(back)
    if form.cleaned_data["scope"] == "filter":
        _, filters = _follow_up_filters(request, actor)
        ids = list(follow_up_list(actor=actor, filters=filters).values_list("pk", flat=True))
    else:
        ids = form.cleaned_data["targets"]
    if not ids:
        messages.warning(request, "Select at least one follow-up, or choose “every follow-up in this list”.")
        return HttpResponseRedirect(back)
    try:
        result = campaign_targets_bulk_change(target_ids=ids, actor=actor, **form.changes())
    except CampaignError as exc:
        for field, problems in exc.errors.items():
            messages.error(request, f"{field.replace('_', ' ')}: {' '.join(problems)}")
        return HttpResponseRedirect(back)
    except NotVisible:
        raise Http404("No such follow-up.") from None
    text = f"Changed {result.changed} of {result.selected} follow-up{pluralize(result.selected)}."
    if result.held_out:
        text += f" {result.held_out} control-group customer{pluralize(result.held_out)} left alone (held out)."
    messages.success(request, text)
    return HttpResponseRedirect(back)


def _assignable_everywhere(actor: Actor) -> list[tuple[int, str]]:
    departments = set(campaign_list(actor=actor).values_list("department_id", flat=True))
    return sorted({pair for pairs in staff_by_department(departments).values() for pair in pairs}, key=lambda p: p[1])


@require_POST
@staff_required
def saved_view_create(request: HttpRequest) -> HttpResponse:
    query = request.POST.get("query", "")
    try:
        view = saved_view_save(
            user=request.user, name=request.POST.get("name", ""), query=query, actor=actor_for_request(request)
        )
    except CampaignError as exc:
        for problems in exc.errors.values():
            messages.error(request, " ".join(problems))
    else:
        messages.success(request, f"View “{view.name}” saved.")
    return HttpResponseRedirect(reverse("staff:follow-ups") + (f"?{query}" if query else ""))


@require_POST
@staff_required
def saved_view_remove(request: HttpRequest, view_id: int) -> HttpResponse:
    if saved_view_delete(user=request.user, view_id=view_id, actor=actor_for_request(request)):
        messages.success(request, "View removed.")
    return HttpResponseRedirect(reverse("staff:follow-ups"))


@require_POST
@staff_required
def follow_up_update(request: HttpRequest, target_id: int) -> HttpResponse:
    """The one-step update: status, outcome, due date, assignee and a note, saved together."""
    actor = actor_for_request(request)
    target = campaign_target_get(actor=actor, target_id=target_id)
    if target is None:
        raise Http404("No such follow-up.")
    staff = staff_by_department({target.campaign.department_id})
    form = FollowUpForm(request.POST, staff=staff[target.campaign.department_id])
    errors: dict[str, list[str]] = {}
    saved = False
    if form.is_valid():
        try:
            campaign_target_update(target_id=target.pk, actor=actor, **form.changes())
            saved = True
        except CampaignError as exc:
            errors = exc.errors
        except NotVisible:
            raise Http404("No such follow-up.") from None
    else:
        errors = {name: [str(e) for e in errs] for name, errs in form.errors.items()}
    if _is_htmx(request) or not saved:
        fresh = _with_recent_notes(with_current_risk(campaign_target_list(actor=actor))).get(pk=target.pk)
        context = {
            "card": _cards([fresh], staff)[0],
            "errors": errors,
            "saved": saved,
            # A refused save shows the form again with what was typed, so no note is lost.
            "note_text": "" if saved else request.POST.get("note", ""),
            "today": timezone.localdate(),
            "next": _safe_next(request, ""),
        }
        if _is_htmx(request):
            return render(request, "staff/_target_card.html", context)
        # Without JavaScript a refused save gets a page of its own with the card, errors and the text.
        return render(request, "staff/follow_up_edit.html", context, status=400)
    if target.customer is None:  # erased since: the card stays, anonymised
        messages.success(request, "Follow-up saved.")
        return HttpResponseRedirect(_safe_next(request, reverse("staff:follow-ups")))
    messages.success(request, f"Follow-up for {target.customer.customer_id} saved.")
    return HttpResponseRedirect(_safe_next(request, reverse("staff:customer", args=[target.customer.customer_id])))


@require_POST
@staff_required
def follow_up_step_done(request: HttpRequest, target_id: int) -> HttpResponse:
    """Tick off a follow-up's next playbook step; htmx swaps the card, a plain POST goes back."""
    actor = actor_for_request(request)
    target = campaign_target_get(actor=actor, target_id=target_id)
    if target is None:
        raise Http404("No such follow-up.")
    errors: dict[str, list[str]] = {}
    step = request.POST.get("step", "")
    try:
        campaign_target_step_done(target_id=target.pk, actor=actor, step=int(step) if step.isdigit() else -1)
    except CampaignError as exc:
        errors = exc.errors
    except NotVisible:
        raise Http404("No such follow-up.") from None
    if _is_htmx(request):
        staff = staff_by_department({target.campaign.department_id})
        fresh = _with_recent_notes(with_current_risk(campaign_target_list(actor=actor))).get(pk=target.pk)
        context = {"card": _cards([fresh], staff)[0], "errors": errors, "saved": not errors,
                   "today": timezone.localdate(), "next": _safe_next(request, "")}  # fmt: skip
        return render(request, "staff/_target_card.html", context)
    for field, problems in errors.items():
        messages.error(request, f"{field}: {' '.join(problems)}")
    return HttpResponseRedirect(_safe_next(request, reverse("staff:follow-ups")))


@require_http_methods(["GET", "POST"])
@staff_required
def staff_settings(request: HttpRequest) -> HttpResponse:
    """A staff member's own settings: the daily digest e-mail on or off."""
    if request.method == "POST":
        enabled = request.POST.get("daily_digest") == "on"
        digest_preference_set(user=request.user, enabled=enabled)
        messages.success(request, "Daily digest " + ("on." if enabled else "off: no more digest e-mails."))
        return HttpResponseRedirect(reverse("staff:settings"))
    pref = DigestPreference.objects.filter(user=request.user).first()
    return render(request, "staff/settings.html", {"daily_digest": pref.daily_digest if pref else True})


@require_http_methods(["GET", "POST"])
def staff_session(request: HttpRequest) -> JsonResponse:
    """The in-place sign-in of the staff pages: GET gives a fresh CSRF token, POST signs in.

    Used by staff.js when a save meets an expired session or a missing CSRF cookie, so the page (and the
    note typed in it) stays where it is. Sign-ins go through ``authenticate()``, so the login policy
    (lock-outs, audit) applies exactly as on the login page.
    """
    if request.method == "POST":
        form = AuthenticationForm(request, data=request.POST)
        if not form.is_valid():
            errors = [str(e) for errs in form.errors.values() for e in errs]
            return JsonResponse({"authenticated": False, "errors": errors}, status=400)
        auth_login(request, form.get_user())
    authenticated = user_is_staff_member(request.user)
    return JsonResponse({"authenticated": authenticated, "csrf_token": get_token(request)})


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """``/`` (the login page's brand link, the admin's "View site"): staff pages for staff, else the login."""
    if user_is_staff_member(request.user):
        return redirect("staff:dashboard")
    return staff_required(dashboard)(request)


# --- customers -----------------------------------------------------------------------------------


@require_GET
@staff_required
def customer_search(request: HttpRequest) -> HttpResponse:
    query = (request.GET.get("q") or "").strip()[:64]
    found = Customer.objects.filter(customer_id__istartswith=query) if query else Customer.objects.none()
    matches = list(found.order_by("customer_id")[: SEARCH_LIMIT + 1])
    if len(matches) == 1 or any(c.customer_id == query for c in matches):
        exact = next((c for c in matches if c.customer_id == query), matches[0])
        return redirect("staff:customer", customer_id=exact.customer_id)
    # Say when the list is cut, and how many matched, instead of stopping silently at the limit.
    total = found.count() if len(matches) > SEARCH_LIMIT else len(matches)
    return render(
        request,
        "staff/customer_search.html",
        {"query": query, "matches": matches[:SEARCH_LIMIT], "total": total, "limit": SEARCH_LIMIT},
    )


@require_GET
@staff_required
def customer_detail(request: HttpRequest, customer_id: str) -> HttpResponse:
    actor = actor_for_request(request)
    overview = customer_overview(actor=actor, customer_id=customer_id)
    if overview is None:
        raise Http404("No such customer.")
    open_targets = [t for t in overview.targets if t.campaign.status != CampaignStatus.CLOSED]
    staff = staff_by_department({t.campaign.department_id for t in open_targets})
    return render(
        request,
        "staff/customer.html",
        {
            "o": overview,
            "customer": overview.customer,
            "timeline": customer_timeline(actor=actor, overview=overview),
            "trend_chart": charts.risk_trend(
                [(p.created_at.strftime("%d %b"), p.churn_probability, p.risk_level)
                 for p in reversed(overview.predictions)],
                title="Churn probability over time",
            ),
            "cards": _cards(open_targets, staff),
            "today": timezone.localdate(),
            "status_classes": STATUS_CLASSES,
        },
    )


# --- campaigns -----------------------------------------------------------------------------------


@require_GET
@staff_required
def campaigns(request: HttpRequest) -> HttpResponse:
    actor = actor_for_request(request)
    return render(
        request, "staff/campaign_list.html", {"campaigns": list(campaign_list_with_counts(actor=actor)[:200])}
    )


@require_http_methods(["GET", "POST"])
@staff_required
def campaign_new(request: HttpRequest) -> HttpResponse:
    actor = actor_for_request(request)
    departments = None
    if actor.is_superuser:
        departments = list(Department.objects.order_by("name").values_list("pk", "name"))
        owners = list(
            get_user_model().objects.filter(pk__in=staff_user_ids(), is_active=True).order_by("username")
            .values_list("pk", "username")
        )  # fmt: skip
    else:
        owners = list(assignable_users(department_id=actor.department_id or 0).values_list("pk", "username"))
    form = CampaignForm(
        request.POST or None,
        owners=owners,
        departments=departments,
        initial={"owner": request.user.pk, "department": actor.department_id},
    )
    if request.method == "POST" and form.is_valid():
        try:
            campaign = campaign_create(actor=actor, spec=form.spec(), department_id=form.cleaned_data.get("department"))
        except CampaignError as exc:
            for field, problems in exc.errors.items():
                form.add_error(field if field in form.fields else None, problems)
        else:
            messages.success(request, f"Campaign {campaign.name!r} created. Enrol customers to start it.")
            return redirect("staff:campaign", campaign_id=campaign.pk)
    return render(
        request,
        "staff/campaign_form.html",
        {"form": form, "has_department": actor.department_id is not None or actor.is_superuser},
    )


@require_GET
@staff_required
def campaign_detail(request: HttpRequest, campaign_id: int) -> HttpResponse:
    actor = actor_for_request(request)
    campaign = campaign_get(actor=actor, campaign_id=campaign_id)
    if campaign is None:
        raise Http404("No such campaign.")
    effectiveness = campaign_effectiveness(campaign=campaign)
    staff = staff_by_department({campaign.department_id})
    group = request.GET.get("group") or ""
    status = request.GET.get("status") or ""
    targets = campaign_target_list(actor=actor).filter(campaign=campaign)
    if group in TargetGroup.values:
        targets = targets.filter(group=group)
    if status in FollowUpStatus.values:
        targets = targets.filter(follow_up_status=status)
    page = Paginator(
        _with_recent_notes(with_current_risk(targets).order_by(*TREATMENT_FIRST)), PAGE_SIZE
    ).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    progress = effectiveness.progress
    e = effectiveness.effect
    context = {
        "campaign": campaign,
        "eff": effectiveness,
        "effect": e,
        "page": page,
        "cards": _cards(rows, staff),
        "group": group,
        "status": status,
        "statuses": FollowUpStatus.choices,
        "enrol_form": EnrolForm(staff=staff[campaign.department_id]),
        "today": timezone.localdate(),
        "progress_chart": charts.progress_bar(
            [(FollowUpStatus(s).label, progress[s], STATUS_CLASSES[s]) for s in FollowUpStatus],
            title="Treatment follow-ups by status",
        ),
        "retention_chart": charts.grouped_bars(
            [
                (
                    "Retention",
                    [
                        ("Treatment", effectiveness.treatment.retention_rate, "treatment"),
                        ("Control", effectiveness.control.retention_rate, "control"),
                    ],
                )
            ],
            title="Retention rate, treatment vs control",
        ),
        "status_labels": dict(FollowUpStatus.choices),
        "save_rate": campaign_save_rate(campaign=campaign, effectiveness=effectiveness),
    }
    return render(request, "staff/campaign.html", context)


@require_POST
@staff_required
def campaign_enrol_view(request: HttpRequest, campaign_id: int) -> HttpResponse:
    actor = actor_for_request(request)
    campaign = campaign_get(actor=actor, campaign_id=campaign_id)
    if campaign is None:
        raise Http404("No such campaign.")
    staff = staff_by_department({campaign.department_id})
    form = EnrolForm(request.POST, staff=staff[campaign.department_id])
    if not form.is_valid():
        for field, problems in form.errors.items():
            messages.error(request, f"{field}: {' '.join(problems)}")
        return redirect("staff:campaign", campaign_id=campaign.pk)
    try:
        result = campaign_enrol(
            campaign_id=campaign.pk,
            actor=actor,
            assignee_ids=form.cleaned_data["assignees"],
            limit=form.cleaned_data["limit"],
        )
    except CampaignError as exc:
        for field, problems in exc.errors.items():
            messages.error(request, f"{field}: {' '.join(problems)}")
    else:
        skipped = []
        if result.already_enrolled:
            skipped.append(f"{result.already_enrolled} already in this campaign")
        if result.in_other_campaign:
            held = ", ".join(f"{name}: {n}" for name, n in result.in_other_campaign_by_department.items())
            skipped.append(f"{result.in_other_campaign} in another active campaign" + (f" ({held})" if held else ""))
        if result.over_limit:
            skipped.append(f"{result.over_limit} over the limit")
        messages.success(
            request,
            f"Enrolled {result.enrolled} customers: {result.treatment} to follow up, "
            f"{result.control} held out as control." + (f" Skipped {', '.join(skipped)}." if skipped else ""),
        )
    return redirect("staff:campaign", campaign_id=campaign.pk)


@require_POST
@staff_required
def campaign_close_view(request: HttpRequest, campaign_id: int) -> HttpResponse:
    actor = actor_for_request(request)
    campaign = campaign_get(actor=actor, campaign_id=campaign_id)
    if campaign is None:
        raise Http404("No such campaign.")
    campaign_close(campaign_id=campaign.pk, actor=actor)
    messages.success(request, f"Campaign {campaign.name!r} closed. Outcomes can still be recorded.")
    return redirect("staff:campaign", campaign_id=campaign.pk)


@require_POST
@staff_required
def campaign_preview_view(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The audience an enrolment would take now, with its expected saves, revenue, cost and net."""
    actor = actor_for_request(request)
    campaign = campaign_get(actor=actor, campaign_id=campaign_id)
    if campaign is None:
        raise Http404("No such campaign.")
    limit = request.POST.get("limit") or ""
    figures = projection_as_dict(campaign_audience(campaign=campaign, limit=int(limit) if limit.isdigit() else None))
    context = {"campaign": campaign, "preview": figures}
    if _is_htmx(request):
        return render(request, "staff/_campaign_preview.html", context)
    return render(request, "staff/campaign_preview.html", context)


@require_GET
@staff_required
def campaign_targets_export(request: HttpRequest, campaign_id: int) -> HttpResponse:
    actor = actor_for_request(request)
    campaign = campaign_get(actor=actor, campaign_id=campaign_id)
    if campaign is None:
        raise Http404("No such campaign.")
    targets = campaign_target_list(actor=actor).filter(campaign=campaign)
    return csv_response(targets_csv_rows(targets), f"campaign-{campaign.pk}-targets.csv")


@require_GET
@staff_required
def campaign_assignees_export(request: HttpRequest, campaign_id: int) -> HttpResponse:
    actor = actor_for_request(request)
    campaign = campaign_get(actor=actor, campaign_id=campaign_id)
    if campaign is None:
        raise Http404("No such campaign.")
    rows = assignee_csv_rows(campaign_effectiveness(campaign=campaign))
    return csv_response(rows, f"campaign-{campaign.pk}-per-assignee.csv")
