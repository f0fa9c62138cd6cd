//! Marketing's and finance's web console at `/console/`: static pages and one
//! hand-written ES module, compiled into the binary (`assets.rs`), that call
//! the public API with the token the user pastes (kept in the tab's
//! `sessionStorage`, sent as `Authorization: Bearer`). The server renders no
//! data into the pages and reads no token here: every figure comes from a
//! role-gated `/v1/…` endpoint. Every response under `/console` carries
//! [`CONTENT_SECURITY_POLICY`] and `X-Content-Type-Options: nosniff`.

pub mod assets;

use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, HttpResponse, web};
use assets::Asset;

/// Nothing but the console's own files: no inline script or style, no other
/// origin (no CDN, no web fonts), no framing, no `<base>`, forms post here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
    object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Pages and assets are revalidated on every use (by their `ETag`): a new
/// binary's console shows at the next load, and an unchanged file costs a 304.
pub const CACHE_CONTROL: &str = "no-cache";

/// Registers `/console` and everything under it.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let headers = DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        .add((header::CACHE_CONTROL, CACHE_CONTROL));
    let mut scope = web::scope("/console")
        .wrap(headers)
        .route("", web::get().to(to_slash))
        .route("", web::head().to(to_slash));
    for (path, asset) in assets::routes() {
        scope = scope.service(
            web::resource(path)
                .route(web::get().to(move |req: HttpRequest| async move { serve(&req, asset) }))
                .route(web::head().to(move |req: HttpRequest| async move { serve(&req, asset) })),
        );
    }
    cfg.service(scope.default_service(web::to(not_found)));
}

/// `/console` → `/console/`, so that relative links resolve the same way.
async fn to_slash() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/console/"))
        .finish()
}

/// Any other path or method under `/console`: the console's own 404 page
/// (with the same headers as every page).
async fn not_found() -> HttpResponse {
    let page = assets::not_found();
    HttpResponse::NotFound()
        .insert_header((header::CONTENT_TYPE, page.content_type))
        .body(page.body.as_bytes())
}

/// The file, or 304 when the client's `If-None-Match` names its `ETag`.
fn serve(req: &HttpRequest, asset: &'static Asset) -> HttpResponse {
    let fresh = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == asset.etag
        });
    let etag = HeaderValue::from_str(&asset.etag).ok();
    if fresh {
        let mut r = HttpResponse::NotModified();
        if let Some(etag) = etag {
            r.insert_header((header::ETAG, etag));
        }
        return r.finish();
    }
    let mut r = HttpResponse::Ok();
    r.insert_header((header::CONTENT_TYPE, asset.content_type));
    if let Some(etag) = etag {
        r.insert_header((header::ETAG, etag));
    }
    r.body(asset.body.as_bytes())
}
