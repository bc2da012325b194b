"""The configuration language: frozen, strict msgspec Structs and nothing else.

``gateway.yaml`` decodes into :class:`GatewayFile`; each ``routes.d/*.yaml`` into
:class:`RouteFile`. Unknown keys are errors (typos must not pass silently). Lists of items
with an ``id`` or ``name`` are used instead of maps so that error paths keep their place.
Optional settings default to ``None`` meaning "inherit": defaults -> upstream -> route.
"""

from __future__ import annotations

from gateway.config.model.common import (
    Base,
    PositiveInt,
    RateLimit,
    Retry,
    StatusCode,
    Template,
)
from gateway.config.model.gateway_file import (
    CHATGPT_CALLBACKS,
    Admin,
    ApiKeyAuth,
    ApiKeyUser,
    BearerPassthroughAuth,
    CorsSettings,
    Defaults,
    GatewayFile,
    InboundAuth,
    Info,
    OAuthClient,
    OAuthInbound,
    OAuthServer,
    OAuthUser,
    Profile,
    QueueSettings,
    ReloadSettings,
    Server,
    StoreSettings,
)
from gateway.config.model.route_file import (
    RouteFile,
)
from gateway.config.model.routes import (
    BearerAuth,
    BodySpec,
    HeaderAuth,
    NoOutboundAuth,
    OAuth2AuthorizationCode,
    OutboundAuth,
    Param,
    PassthroughAuth,
    ResponseSpec,
    Route,
    Upstream,
    UpstreamCall,
)
from gateway.config.model.webhooks import (
    HmacVerify,
    NoVerify,
    Ping,
    Schedule,
    UrlSecret,
    Webhook,
    WebhookResponse,
    WebhookRetry,
)

__all__ = [
    "CHATGPT_CALLBACKS",
    "Admin",
    "ApiKeyAuth",
    "ApiKeyUser",
    "Base",
    "BearerAuth",
    "BearerPassthroughAuth",
    "BodySpec",
    "CorsSettings",
    "Defaults",
    "GatewayFile",
    "HeaderAuth",
    "HmacVerify",
    "InboundAuth",
    "Info",
    "NoOutboundAuth",
    "NoVerify",
    "OAuth2AuthorizationCode",
    "OAuthClient",
    "OAuthInbound",
    "OAuthServer",
    "OAuthUser",
    "OutboundAuth",
    "Param",
    "PassthroughAuth",
    "Ping",
    "PositiveInt",
    "Profile",
    "QueueSettings",
    "RateLimit",
    "ReloadSettings",
    "ResponseSpec",
    "Retry",
    "Route",
    "RouteFile",
    "Schedule",
    "Server",
    "StatusCode",
    "StoreSettings",
    "Template",
    "Upstream",
    "UpstreamCall",
    "UrlSecret",
    "Webhook",
    "WebhookResponse",
    "WebhookRetry",
]
