from django.urls import path

from apps.accounts import views
from apps.accounts.oidc import views as signin_views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", signin_views.SignInView.as_view(), name="login"),
    path("logout/", signin_views.sign_out, name="logout"),
    path("oidc/<str:provider>/login/", signin_views.ProviderLoginView.as_view(), name="oidc-login"),
    path("oidc/<str:provider>/callback/", signin_views.ProviderCallbackView.as_view(), name="oidc-callback"),
    path("account/tokens/", views.tokens, name="tokens"),
]
