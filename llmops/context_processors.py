from llmops.roles import NAVIGATION, has_perm, user_roles


def navigation(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": [], "user_roles": []}
    match = getattr(request, "resolver_match", None)
    current = match.view_name if match else ""
    items = [
        {"label": label, "url_name": url_name, "active": current == url_name}
        for label, url_name, permission in NAVIGATION
        if has_perm(user, permission)
    ]
    return {"nav_items": items, "user_roles": sorted(user_roles(user))}
