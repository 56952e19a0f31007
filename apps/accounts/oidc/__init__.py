"""Federated sign-in with OpenID Connect, for one or several identity providers at once.

- ``config``: providers and role rules read from the environment (the settings call it);
- ``discovery``: each provider's discovery document and signing keys (JWKS), cached;
- ``tokens``: JWT validation shared by sign-in (ID tokens) and the API (bearer access tokens);
- ``roles``: group/entitlement claims → project memberships, re-applied at every sign-in;
- ``services``: a verified set of claims → the portal user, through the (issuer, sub) ``Identity``;
- ``backends``, ``views``: mozilla-django-oidc's backend and views, made per provider;
- ``authentication``: ``Authorization: Bearer <JWT>`` for scripts.
"""
