"""What the web page needs from billing: where Stripe.js comes from, and the page's
Content-Security-Policy allowing it (and nothing foreign while billing is off)."""

from __future__ import annotations

from urllib.parse import urlsplit

from parley.settings import Settings

STRIPE_JS_ORIGIN = "https://js.stripe.com"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def stripe_csp_sources(settings: Settings) -> dict[str, list[str]]:
    """The sources Stripe.js needs, by CSP directive; none while billing is off.

    Stripe.js from its origin (scripts and its card frames, and 3-D Secure pages from
    hooks.stripe.com) talking to Stripe's API (`PARLEY_STRIPE_API_BASE`).
    """
    if not settings.billing_enabled:
        return {}
    js = _origin(settings.stripe_js_url)
    scripts = [js]
    frames = [js]
    if js == STRIPE_JS_ORIGIN:
        scripts.append("https://*.js.stripe.com")
        frames += ["https://*.js.stripe.com", "https://hooks.stripe.com"]
    return {
        "script-src": scripts,
        "frame-src": frames,
        "connect-src": [_origin(settings.stripe_api_base)],
    }
