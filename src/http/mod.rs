//! The HTTP API (actix-web): routes, authentication, bounded bodies and
//! problem+json errors.

/// Marketing's admin endpoints (campaign apply, plan, live view).
pub mod admin;
/// The load-absorption layers in front of Redis.
pub mod admission;
/// Bearer tokens and roles.
pub mod auth;
/// Size-bounded body reading and the spin body's canonical form.
pub mod body;
/// Marketing's burn-down of a live campaign (JSON and SVG).
pub mod burndown;
/// Marketing's list of every campaign, live.
pub mod campaign_list;
/// The campaign id of a route's `{id}`.
pub mod campaign_path;
/// The client's view of a campaign.
pub mod campaigns;
/// Marketing's prize codes: upload, count, withdraw.
pub mod codes;
/// The one error type and its problem+json rendering.
pub mod error;
/// Finance's endpoints (rewards listing and export, reconciliation summary).
pub mod finance;
/// The order service's grants and revocations of earned spins.
pub mod grants;
/// Liveness and readiness.
pub mod health;
/// Request duration metrics and the access log.
pub mod observe;
/// Each prize as the draw treats it now (stock, releases, budget, odds).
pub mod pacing;
/// The server's settings.
mod settings;
/// The spin endpoint.
pub mod spins;
/// Closing connections whose request body was not read to its end.
pub mod unread_body;

use crate::store::redis::RedisStore;
use actix_web::{HttpResponse, web};
use error::ApiError;
pub use settings::HttpSettings;
use sqlx::PgPool;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_actix_web::AppExt;

/// What every request handler shares.
pub struct AppState {
    pub redis: RedisStore,
    pub admission: crate::admission::Admission,
    pub pg: PgPool,
    pub http: HttpSettings,
    /// When settlement counts as stuck (finance summary, readiness).
    pub settlement: crate::settle::Thresholds,
    /// Longest a finance query may take (`database.query_timeout_ms`).
    pub pg_query_limit: std::time::Duration,
    /// This process runs a settler: readiness then needs PostgreSQL too.
    pub settling: bool,
    /// Campaign YAML is parsed here, off the HTTP workers.
    pub campaign_parser: admin::CampaignParser,
}

/// Registers every route; the same function feeds the server and the OpenAPI document.
pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(spins::create_spin)
        .service(campaigns::get_campaign)
        .service(admin::put_campaign)
        .service(admin::get_live)
        .service(campaign_list::list_campaigns)
        .service(admin::plan)
        .service(burndown::get_burndown)
        .service(burndown::get_burndown_svg)
        .service(codes::add_codes)
        .service(codes::get_codes)
        .service(codes::withdraw_codes)
        .service(grants::create_grant)
        .service(grants::create_grants)
        .service(grants::revoke_grant)
        .service(finance::list_rewards)
        .service(finance::summary)
        .service(health::healthz)
        .service(health::readyz);
}

#[derive(OpenApi)]
#[openapi(
    info(title = "prizewheel", description = "Flash-sale spin-the-wheel API: atomic, inventory-bounded prize draws."),
    components(schemas(error::Problem)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The OpenAPI 3.1 document of the routes above.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut api) = actix_web::App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes)
        .split_for_parts();
    document_shared_problems(&mut api);
    unique_operation_ids(&mut api);
    api
}

/// A handler serving several methods (`plan`: `GET`, and `POST` for clients
/// that cannot send a body with `GET`) has one operationId in utoipa, and
/// OpenAPI wants one per operation (client generators refuse a repeated one):
/// every form but `GET` gets its method appended, e.g. `plan_by_post`.
fn unique_operation_ids(api: &mut utoipa::openapi::OpenApi) {
    for item in api.paths.paths.values_mut() {
        let get = item.get.as_ref().and_then(|op| op.operation_id.clone());
        let others = [
            ("post", &mut item.post),
            ("put", &mut item.put),
            ("patch", &mut item.patch),
            ("delete", &mut item.delete),
        ];
        for (method, op) in others {
            if let Some(op) = op
                .as_mut()
                .filter(|op| op.operation_id.is_some() && op.operation_id == get)
            {
                op.operation_id = get.as_ref().map(|id| format!("{id}_by_{method}"));
            }
        }
    }
}

/// Problems shared by every endpoint that reads a body or a token, documented
/// here once: 408 `body_timeout` wherever a request body is documented (each is
/// read by `body::read_limited`), 400 `invalid_authorization` wherever a token is.
fn document_shared_problems(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{Content, Ref, RefOr, Response};
    let problem = |description: &str| -> RefOr<Response> {
        Response::builder()
            .description(description)
            .content(
                "application/problem+json",
                Content::new(Some(Ref::from_schema_name("Problem"))),
            )
            .build()
            .into()
    };
    const BODY_TIMEOUT: &str = "The body did not arrive within `http.body_timeout_ms` \
        (`body_timeout`); the connection is closed";
    const TWO_AUTHORIZATIONS: &str = "more than one Authorization header (`invalid_authorization`)";
    for item in api.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            let responses = &mut op.responses.responses;
            if op.request_body.is_some() {
                responses
                    .entry("408".into())
                    .or_insert_with(|| problem(BODY_TIMEOUT));
            }
            if op.security.is_some() {
                match responses.get_mut("400") {
                    Some(RefOr::T(r)) => {
                        r.description = format!("{}; or {TWO_AUTHORIZATIONS}", r.description)
                    }
                    Some(RefOr::Ref(_)) => {}
                    None => {
                        let described = format!("Bad request: {TWO_AUTHORIZATIONS}");
                        responses.insert("400".into(), problem(&described));
                    }
                }
            }
        }
    }
}

/// Unknown paths answer 404 problem+json; a known path with a method it does
/// not serve (e.g. `TRACE /healthz`) answers 405 with `Allow`.
pub async fn fallback(
    req: actix_web::HttpRequest,
    allowed: web::Data<AllowedMethods>,
) -> Result<HttpResponse, ApiError> {
    match allowed.for_path(req.path()) {
        Some(allow) => Err(ApiError::MethodNotAllowed(allow.to_owned())),
        // Served but undocumented (/openapi.json, /metrics): GET only.
        None if req.resource_map().has_resource(req.path()) => {
            Err(ApiError::MethodNotAllowed("GET".into()))
        }
        None => Err(ApiError::NotFound),
    }
}

/// The methods each documented path serves (from the OpenAPI document), for
/// the `Allow` header of a 405.
pub struct AllowedMethods(Vec<(Vec<String>, String)>);

impl AllowedMethods {
    pub fn from_openapi(doc: &utoipa::openapi::OpenApi) -> Self {
        let doc = serde_json::to_value(doc).unwrap_or_default();
        let methods = ["get", "put", "post", "delete", "patch", "head", "options"];
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        AllowedMethods(
            paths
                .into_iter()
                .map(|(path, item)| {
                    let segments = path.split('/').map(str::to_owned).collect();
                    let allow: Vec<String> = methods
                        .iter()
                        .filter(|m| item.get(**m).is_some())
                        .map(|m| m.to_uppercase())
                        .collect();
                    (segments, allow.join(", "))
                })
                .collect(),
        )
    }

    /// `{name}` in a documented path matches any one segment.
    pub fn for_path(&self, path: &str) -> Option<&str> {
        let wanted: Vec<&str> = path.split('/').collect();
        self.0.iter().find_map(|(segments, allow)| {
            let fits = segments.len() == wanted.len()
                && segments
                    .iter()
                    .zip(&wanted)
                    .all(|(s, w)| s == w || (s.starts_with('{') && !w.is_empty()));
            fits.then_some(allow.as_str())
        })
    }
}

/// Prometheus text of every metric (not in the OpenAPI document: it is for the
/// scraper, not for clients).
pub async fn metrics_text() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::telemetry::metrics().render())
}

/// Serves the document built at startup.
pub async fn openapi_json(doc: web::Data<String>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.get_ref().clone())
}
