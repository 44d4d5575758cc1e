"""ASGI entry point: HTTP through Django, WebSockets through Channels.

WebSockets pass AllowedHostsOriginValidator (against cross-site WebSocket
hijacking; it is not authentication) and the session middleware, which reads
the signed session cookie that holds a learner's capabilities.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from channels.sessions import SessionMiddlewareStack  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from webapp.lab.routing import websocket_urlpatterns  # noqa: E402
from webapp.runtime import write_through  # noqa: E402

# Under daphne: send frames to sockets at once instead of on the next loop turn.
write_through.install()

# Static files come from our own process (no CDN, nothing to collect); a proxy may
# serve them instead in production with LAB_SERVE_STATIC=0.
http_app = ASGIStaticFilesHandler(django_asgi_app) if os.environ.get("LAB_SERVE_STATIC", "1") == "1" else django_asgi_app

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(SessionMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
