"""Client-application pages (serving.clients: architects and admins): the applications that call the gateway,
their rate limits and tokens; create an application, issue a token (shown once), revoke one."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from llmops.roles import role_required
from registry_app.client_forms import ClientAppForm, ClientTokenForm
from registry_app.models import ClientApp, ClientToken
from registry_app.services.clients import client_app_create, client_token_issue, client_token_revoke


def _apps():
    active = Q(tokens__revoked_at__isnull=True)
    return ClientApp.objects.annotate(n_tokens=Count("tokens"), n_active=Count("tokens", filter=active))


@role_required("serving.clients")
@require_http_methods(["GET", "POST"])
def client_list(request):
    form = ClientAppForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            app = client_app_create(user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_service_errors(exc.message_dict)
        else:
            messages.success(request, f"Application {app.name} created: issue it a token.")
            return redirect("registry:client", pk=app.pk)
    status = 400 if form.errors else 200
    return render(request, "registry/client_list.html", {"form": form, "apps": _apps()}, status=status)


def _detail(request, app: ClientApp, form=None, new_token: str | None = None, status: int = 200):
    context = {
        "app": app,
        "tokens": app.tokens.all(),
        "form": form or ClientTokenForm(),
        "new_token": new_token,
    }
    template = "registry/client_detail.html#token-panel" if request.htmx else "registry/client_detail.html"
    return render(request, template, context, status=status)


@role_required("serving.clients")
@require_GET
def client_detail(request, pk: int):
    return _detail(request, get_object_or_404(ClientApp, pk=pk))


@role_required("serving.clients")
@require_POST
def client_token_new(request, pk: int):
    app = get_object_or_404(ClientApp, pk=pk)
    form = ClientTokenForm(request.POST)
    if form.is_valid():
        try:
            token, raw = client_token_issue(app=app, **form.cleaned_data)
        except ValidationError as exc:
            form.add_service_errors(exc.message_dict)
        else:
            messages.success(
                request, f"Token “{token.name}” issued. Copy it now: it will not be shown again."
            )
            return _detail(request, app, new_token=raw)
    return _detail(request, app, form=form, status=400)


@role_required("serving.clients")
@require_POST
def client_token_revoke_view(request, pk: int, token_pk: int):
    token = get_object_or_404(ClientToken.objects.select_related("app"), pk=token_pk, app_id=pk)
    client_token_revoke(token=token)
    messages.success(request, f"Token “{token.name}” revoked: calls with it now get 401.")
    if request.htmx:
        return _detail(request, token.app)
    return redirect("registry:client", pk=pk)
