"""The campaign resource's part of the OpenAPI document: CRUD, lifecycle, test sends, the
recipients ledger and stats (types and series: openapi_series.py, the funnel: openapi_funnel.py)."""

from __future__ import annotations

from collections.abc import Callable

from broadcaster.openapi_schemas import (
    ANY_OBJ,
    CAMP,
    CURSOR,
    ID,
    INT,
    STR,
    TIME,
    J,
    arr,
    cursor_body,
    limit,
    nullable,
    obj,
    paged,
    ref,
)


def operations(op: Callable[..., J], q: Callable[..., J]) -> list[tuple[str, str, J]]:
    return [
        ("post", "/campaigns", op("CreateCampaign", "Campaigns", "Create a draft campaign", CAMP,
                                  status="201", errors="400 404 409", body=ref("CampaignInput"),
                                  body_required=True)),
        ("get", "/campaigns/{id}", op(
            "GetCampaign", "Campaigns", "Get a campaign with a page of campaign.users; the pager is "
            "the top-level users {next, prev}", CAMP, params=(
                q("limit", limit(1000, 100), "campaign users per page"), q("next", CURSOR),
                q("prev", CURSOR),
                {"name": "payload", "in": "query", "required": False,
                 "description": "the same as {\"users\": {limit, next, prev}}",
                 "content": {"application/json": {"schema": obj({"users": obj({
                     "limit": limit(1000, 100), "next": STR, "prev": STR})})}}},))),
        ("put", "/campaigns/{id}", op("UpdateCampaign", "Campaigns", "Full update (draft or "
                                      "scheduled)", CAMP, body=ref("CampaignInput"),
                                      body_required=True)),
        ("delete", "/campaigns/{id}", op("DeleteCampaign", "Campaigns",
                                         "Delete (not while in progress); a large campaign's rows are purged"
                                         " in the background, its id refused (409) until then")),
        ("post", "/campaigns/query", op("QueryCampaigns", "Campaigns", "Query campaigns",
                                        paged("campaigns", ref("Campaign")), errors="400",
                                        body=cursor_body(1000, 100, user_limit={
                                            **limit(1000, 100),
                                            "description": "campaign.users per campaign"}))),
        ("post", "/campaigns/{id}/start", op(
            "StartCampaign", "Campaigns", "Start now or at scheduled_for; stop at stop_at", CAMP,
            body=obj({"scheduled_for": nullable(TIME), "stop_at": nullable(TIME)}))),
        ("post", "/campaigns/{id}/stop", op("StopCampaign", "Campaigns", "Stop at once", CAMP)),
        ("post", "/campaigns/{id}/pause", op("PauseCampaign", "Campaigns", "Pause (extension)",
                                             CAMP)),
        ("post", "/campaigns/{id}/resume", op("ResumeCampaign", "Campaigns", "Resume (extension)",
                                              CAMP)),
        ("post", "/campaigns/{id}/test", op(
            "TestCampaign", "Campaigns", "Send the rendered message to up to 100 users now",
            obj({"campaign": ref("Campaign"), "sent": arr(ANY_OBJ), "duration": STR}), body_required=True, body=obj({"users": arr(ID, 1, 100)}, "users"))),
        ("get", "/campaigns/{id}/recipients", op(
            "QueryCampaignRecipients", "Campaigns", "The per-recipient ledger (extension)",
            paged("recipients", ref("Recipient")), params=(
                q("status", {"enum": ["pending", "sent", "skipped", "errored", "read"]}),
                q("limit", limit(1000, 100)), q("next", STR), q("prev", STR)))),
        ("delete", "/campaigns/{id}/recipients/{target_id}", op(
            "DeleteCampaignRecipient", "Campaigns", "Exclude a recipient not yet sent")),
        ("get", "/campaigns/{id}/stats", op(
            "GetCampaignStats", "Campaigns", "Stats and the funnel timeline (extension)",
            obj({"status": STR, "stats": ref("CampaignStats"), "timeline": arr(obj({
                "at": TIME, **{k: INT for k in ("sent", "read", "clicked", "clicks", "converted",
                                               "conversions", "errored")}})), "duration": STR}),
            params=(q("granularity", {"enum": ["minute", "hour", "day"], "default": "minute"},
                      "bucket size of the timeline (UTC)"),))),
    ]
