from django.urls import re_path

from .consumers import SimConsumer

websocket_urlpatterns = [
    re_path(r"^ws/sim/(?P<sim_id>[A-Za-z0-9_-]{1,32})/$", SimConsumer.as_asgi()),
]
