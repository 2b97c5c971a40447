"""The funnel's part of the OpenAPI document (SPEC 5C): conversions, clicks, funnel views."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broadcaster.openapi_schemas import ID, INT, SCHEMAS, STR, TIME, J, arr, nullable, obj, ref

NUM: J = {"type": "number"}

SCHEMAS.update({
    "ConversionInput": obj({
        "id": {**ID, "description": "de-duplicates per app (a repeat is reported as duplicate)"},
        "user_id": ID,
        "event": {"type": "string", "minLength": 1, "maxLength": 255},
        "value": {"type": "number", "description": "needs currency: revenue is summed per currency"},
        "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$", "description": "ISO 4217"},
        "created_at": {**TIME, "description": "when it happened (default now): attribution looks back from it"},
    }, "user_id", "event"),
    "Interaction": obj({
        "user_id": nullable(STR), "type": {"enum": ["sent", "read", "clicked", "converted"]},
        "at": TIME, "message_id": nullable(STR), "variant": STR,
        "data": {"type": "object", "description": "clicked: {link, url, first}; converted: {id, event, value?, "
                 "currency?}; channel_cid when there is one; sent and read of a triggered campaign "
                 "with once_per_user false: campaign_id, the occurrence"},
    }, "user_id", "type", "at", "message_id"),
    "ConversionResult": obj({
        "id": STR, "user_id": STR, "event": STR, "campaign_id": nullable(STR),
        "message_id": nullable(STR), "status": {"enum": ["attributed", "unattributed", "duplicate"]},
    }, "id", "user_id", "event", "campaign_id", "message_id", "status"),
})
SCHEMAS["CampaignStats"]["properties"].update({
    "stats_users_clicked": INT, "stats_clicks": INT, "stats_users_converted": INT,
    "stats_conversions": INT,
    "stats_revenue": {"type": "object", "additionalProperties": NUM, "description": "{currency: sum}"},
    "read_rate": NUM, "click_rate": NUM, "conversion_rate": NUM,
})
SCHEMAS["MessageTemplate"]["properties"]["variants"] = {
    **arr(obj({"id": {"type": "string", "maxLength": 64}, "weight": {"type": "number", "exclusiveMinimum": 0,
                                                                     "default": 1},
               "text": {"type": "string", "maxLength": 20_000}, "attachments": arr({"type": "object"}),
               "custom": {"type": "object"}}, "id", "text"), 2, 10),
    "description": "A/B: each recipient gets one, chosen from (campaign, recipient) by weight; "
                   "its messages carry variant_id"}
SCHEMAS["CampaignStats"]["properties"]["variants"] = {
    "type": "object", "description": "A/B campaigns: {variant id: {sent, read, clicked, converted}}",
    "additionalProperties": obj({k: INT for k in ("sent", "read", "clicked", "converted")})}
WINNER: J = obj({"metric": {"enum": ["read", "click", "conversion"]},
                 "test_fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                 "wait": {"type": "string", "pattern": "^[1-9][0-9]{0,6}[smhd]$"}},
                "metric", "test_fraction", "wait")
SCHEMAS["CampaignStats"]["properties"].update({
    "waiting_for_winner": {"type": "boolean"},
    "winner": obj({"variant": STR, "metric": STR}, description="the chosen variant (winner campaigns)")})
for _name in ("CampaignInput", "Campaign"):
    SCHEMAS[_name]["properties"]["winner"] = {
        **nullable(WINNER), "description": "A/B winner: variants to the test fraction, wait, the best to the rest"}
    SCHEMAS[_name]["properties"]["track_clicks"] = {
        "type": "boolean", "default": False,
        "description": "rewrite http(s) links of the text and attachment link fields to <BROADCASTER_PUBLIC_URL>/c/<token>"}
SCHEMAS["AppSettings"]["properties"]["attribution_window"] = {
    "type": "string", "pattern": "^[1-9][0-9]{0,6}[smhd]$", "default": "7d",
    "description": "conversions go to the campaign message received last within it (at most 366d)"}


def operations(op: Callable[..., J], q: Callable[..., J]) -> list[tuple[str, str, Any]]:
    return [
        ("post", "/conversions", op(
            "TrackConversions", "Campaigns",
            "Record 1..1,000 conversions (all or nothing), attributed to the last campaign received",
            obj({"conversions": arr(ref("ConversionResult")), "attributed": INT, "unattributed": INT,
                 "duplicates": INT, "duration": STR}, "conversions", "attributed", "unattributed", "duplicates"),
            body_required=True, errors="400",
            body=obj({"conversions": arr(ref("ConversionInput"), 1, 1000)}, "conversions"))),
        ("get", "/campaigns/{id}/interactions", op(
            "QueryCampaignInteractions", "Campaigns",
            "Interactions of one type: sent and read in recipient order, clicked and converted in time order",
            obj({"interactions": arr(ref("Interaction")), "next": STR, "prev": STR, "duration": STR},
                "interactions", "duration"),
            params=(q("type", {"enum": ["sent", "read", "clicked", "converted"]},
                      "required without a cursor; a cursor carries its type"),
                    q("limit", {"type": "integer", "minimum": 0, "maximum": 1000, "default": 100}),
                    q("next", STR), q("prev", STR)))),
        ("get", "/c/{token}", {**op("FollowLink", "Campaigns", "A tracked link: the click appended to the click outbox "
                                    "(counted moments later, exactly once), then 302 to the original",
                                    public=True, errors="404"),
                               "responses": {"302": {"description": "to the exact link the token was signed for",
                                                     "headers": {"Location": {"schema": STR}}},
                                             "404": {"$ref": "#/components/responses/E404"}}}),
    ]
