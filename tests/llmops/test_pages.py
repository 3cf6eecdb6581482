"""The base UI: navigation by role, HTMX served locally with the CSRF header, toasts, error pages in our look."""

from django.urls import reverse

from llmops.models import DiagnosticJob


def nav_labels(html: str) -> list[str]:
    import re

    nav = html.split('<nav aria-label="Main">', 1)[1].split("</nav>", 1)[0]
    return re.findall(r">([^<>]+)</a>", nav)


def test_navigation_shows_what_each_role_may_open(world):
    everyone = [
        "Home",
        "Error notebook",
        "Curation",
        "Datasets",
        "Fine-tuning",
        "Compression",
        "Models",
        "Promotions",
        "Serving",
        "Evaluation",
    ]
    assert nav_labels(world.client("PM").get("/").content.decode()) == [*everyone, "API tokens", "API docs"]
    architect = nav_labels(world.client("Architect").get("/").content.decode())
    assert architect == [*everyone, "Client apps", "API tokens", "API docs"]
    admin = nav_labels(world.client("Admin").get("/").content.decode())
    assert admin == [*everyone, "Client apps", "Diagnostics", "API tokens", "API docs", "Admin site"]


def test_htmx_comes_from_our_static_files_and_every_request_carries_the_csrf_token(world):
    html = world.client("PM").get("/").content.decode()
    assert '<script src="/static/django_htmx/htmx-2.min.js"' in html
    assert 'hx-headers=\'{"X-CSRFToken": "' in html


def test_a_message_becomes_a_toast_on_the_next_page(world, broker):
    client = world.client("Admin")
    response = client.post(reverse("diagnostics:create"), {"seconds": "0", "queue": "cpu"}, follow=True)
    assert 'class="toast toast-success"' in response.content.decode()
    assert "queued on cpu" in response.content.decode()


def test_a_bad_diagnostic_form_names_the_field_and_writes_nothing(world):
    response = world.client("Admin").post(reverse("diagnostics:create"), {"seconds": "-1", "queue": "cpu"})
    assert response.status_code == 400
    assert "Seconds: Ensure this value is greater than or equal to 0." in response.content.decode()
    assert DiagnosticJob.objects.count() == 0


def test_the_404_page_has_the_portal_look(world):
    response = world.client("PM").get("/no/such/page")
    html = response.content.decode()
    assert response.status_code == 404 and "404 · Not found" in html and 'class="topbar"' in html


def test_the_403_page_has_the_portal_look_and_says_why(world):
    response = world.client("PM").get(reverse("diagnostics:list"))
    html = response.content.decode()
    assert response.status_code == 403 and "403 · Not allowed" in html and "diagnostics.view" in html


def test_the_500_page_has_the_portal_look_without_touching_the_database(rf):
    from llmops.views import server_error

    response = server_error(rf.get("/boom"))
    assert response.status_code == 500 and "500 · Something broke" in response.content.decode()


def test_job_status_polls_while_running_and_stops_polling_when_finished(world):
    job = DiagnosticJob.objects.create(seconds=5)
    client = world.client("Admin")
    url = reverse("diagnostics:detail", args=[job.pk])
    assert 'hx-trigger="every 1s"' in client.get(url, HTTP_HX_REQUEST="true").content.decode()
    job.mark_cancelled()
    fragment = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in fragment and 'data-status="cancelled"' in fragment
