"""The dashboard's routes and navigation. To add a screen: write a module of handlers
(decorated with `require_session`), then append one import and its lines here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from broadcaster.dashboard import campaign_detail, campaign_list, campaign_wizard, screens, signin

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# (method, path, handler, name): names are "dashboard.<Name>" route names (unique).
ROUTES: list[tuple[str, str, Handler, str]] = [
    *signin.ROUTES,
    *campaign_list.ROUTES,
    *campaign_wizard.ROUTES,  # before campaign_detail: /new and /{id}/edit before /{id}...
    *campaign_detail.ROUTES,
    *screens.ROUTES,  # segments, automation, webhooks, settings
]

# (label, path): the nav shows an entry once a GET route serves its path.
NAV: list[tuple[str, str]] = [
    ("Campaigns", "/dashboard/campaigns"),
    ("Segments", "/dashboard/segments"),
    ("Automation", "/dashboard/automation"),
    ("Webhooks", "/dashboard/webhooks"),
    ("Settings", "/dashboard/settings"),
]
