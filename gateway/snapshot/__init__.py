"""The compiled, immutable runtime types: what the compiler builds and the serving layer reads.

Nothing here imports the compiler or the config model; the compiler (gateway.compiler)
builds these, and serve/, queue/, oauth/ and the plugin host only read them.
"""

from __future__ import annotations

from gateway.snapshot.events import (
    CompiledSchedule,
    CompiledWebhook,
    HmacSpec,
    QueueSpec,
    UrlSecretSpec,
)
from gateway.snapshot.generation import (
    LintIssue,
    MetricsAccess,
    Snapshot,
    StartupSettings,
    ThrottleLimits,
)
from gateway.snapshot.oauth import IdentitySpec, OAuthClientSpec, OAuthSpec, RegistrationSpec
from gateway.snapshot.plugins import PluginTarget
from gateway.snapshot.routes import (
    CompiledRoute,
    InboundAuthSpec,
    PathNode,
    PatternRoute,
    PluginRoute,
    ProxyRoute,
    RateLimitSpec,
    ResponseShape,
    RouteCommon,
    RouteMatch,
    RouteTable,
    StaticRoute,
    UpstreamCall,
)
from gateway.snapshot.templates import CompiledTemplate
from gateway.snapshot.upstreams import (
    IDEMPOTENT_METHODS,
    ConnectableAuth,
    OAuth2ClientSpec,
    OutboundAuth,
    PassthroughAuth,
    RetryPolicy,
    UpstreamBinding,
    UpstreamSettings,
    UserTokenSpec,
)
from gateway.snapshot.validation import BodyValidator, FieldError, ParamValidator

__all__ = [
    "IDEMPOTENT_METHODS",
    "BodyValidator",
    "CompiledRoute",
    "CompiledSchedule",
    "CompiledTemplate",
    "CompiledWebhook",
    "ConnectableAuth",
    "FieldError",
    "HmacSpec",
    "IdentitySpec",
    "InboundAuthSpec",
    "LintIssue",
    "MetricsAccess",
    "OAuth2ClientSpec",
    "OAuthClientSpec",
    "OAuthSpec",
    "OutboundAuth",
    "ParamValidator",
    "PassthroughAuth",
    "PathNode",
    "PatternRoute",
    "PluginRoute",
    "PluginTarget",
    "ProxyRoute",
    "QueueSpec",
    "RateLimitSpec",
    "RegistrationSpec",
    "ResponseShape",
    "RetryPolicy",
    "RouteCommon",
    "RouteMatch",
    "RouteTable",
    "Snapshot",
    "StartupSettings",
    "StaticRoute",
    "ThrottleLimits",
    "UpstreamBinding",
    "UpstreamCall",
    "UpstreamSettings",
    "UrlSecretSpec",
    "UserTokenSpec",
]
