from django.urls import include, path

urlpatterns = [path("", include("webapp.lab.urls"))]
