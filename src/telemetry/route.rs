//! A request's route and method as metric and span labels, found once per
//! request and never allocated: actix finds a route's pattern by matching the
//! path against the route table again (regular expressions for `{id}`
//! segments), so the first caller (the request span) stores it in the
//! request's extensions and the others (the duration histogram) read it
//! there. Patterns are the registered routes or `unmatched`, a bounded set,
//! each kept once for the life of the process.

use actix_web::HttpMessage;
use actix_web::dev::ServiceRequest;
use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

/// The pattern of the route a request matched, e.g. `/v1/campaigns/{id}/spins`.
#[derive(Clone, Copy)]
pub struct Route(pub &'static str);

static PATTERNS: LazyLock<RwLock<HashMap<String, &'static str>>> = LazyLock::new(Default::default);

/// The request's route pattern (or `unmatched`), computed on the first call.
pub fn route(req: &ServiceRequest) -> &'static str {
    if let Some(Route(r)) = req.extensions().get::<Route>() {
        return r;
    }
    let r = match req.match_pattern() {
        Some(p) => intern(p),
        None => "unmatched",
    };
    req.extensions_mut().insert(Route(r));
    r
}

/// The one copy of `pattern`. Only registered patterns reach it (an unknown
/// path is `unmatched`), so the set stays as small as the route table.
fn intern(pattern: String) -> &'static str {
    if let Some(p) = PATTERNS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&pattern)
    {
        return p;
    }
    let mut all = PATTERNS.write().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = all.get(&pattern) {
        return p;
    }
    let kept: &'static str = Box::leak(pattern.clone().into_boxed_str());
    all.insert(pattern, kept);
    kept
}

/// The request's method as a static label (`other` for an extension method,
/// which any client can make up).
pub fn method(req: &ServiceRequest) -> &'static str {
    use actix_web::http::Method;
    match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}
