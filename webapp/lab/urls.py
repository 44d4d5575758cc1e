from django.urls import path

from . import views

app_name = "lab"
urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("lab/<slug:kind>/", views.start, name="start"),
    path("lab/<slug:kind>/new", views.new, name="new"),
    path("lab/<slug:kind>/<str:sim_id>/", views.sim, name="sim"),
    path("lab/<slug:kind>/<str:sim_id>/close", views.close, name="close"),
]
