//! `authz`: JWT authentication (Istio RequestAuthentication) and authorization policies (Istio AuthorizationPolicy). Work in progress.
