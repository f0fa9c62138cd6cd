//! Reading request bodies with a hard size bound, so an oversized body costs
//! at most `limit` bytes of memory and answers 413, and a time bound
//! (`http.body_timeout_ms`), so a body that trickles in answers 408.

use super::AppState;
use super::HttpSettings;
use super::error::ApiError;
use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web::{self, Bytes, BytesMut};
use futures_util::StreamExt;

/// Reads the whole body, refusing more than `limit` bytes (by `Content-Length`
/// up front, and while streaming for chunked bodies), within
/// `http.body_timeout_ms` of starting (else 408, and the connection closes):
/// actix bounds the time to send the headers, not the body, and a client
/// sending a byte now and then would hold the connection for as long as it likes.
pub async fn read_limited(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    refuse_declared_over(req, limit)?;
    let timeout = req.app_data::<web::Data<AppState>>().map_or_else(
        || HttpSettings::default().body_timeout(),
        |s| s.http.body_timeout(),
    );
    tokio::time::timeout(timeout, read_all(payload, limit))
        .await
        .map_err(|_| ApiError::BodyTimeout {
            timeout_ms: timeout.as_millis() as u64,
        })?
}

/// 413 when the body's `Content-Length` says it is over `limit`, before a
/// byte of it is read (a chunked body is counted while it streams).
pub fn refuse_declared_over(req: &HttpRequest, limit: usize) -> Result<(), ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    Ok(())
}

async fn read_all(mut payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::MalformedBody(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::BodyTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The spin body as canonical JSON (`domain::context`: keys sorted, no spaces,
/// numbers exact), at most `limit` bytes, or empty when there is no body. Only a
/// JSON object the ledger can store is accepted.
pub fn spin_context(req: &HttpRequest, body: &[u8], limit: usize) -> Result<String, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(String::new());
    }
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        if !is_json_media_type(&ct) {
            return Err(ApiError::UnsupportedMediaType(
                "the spin body must be application/json".into(),
            ));
        }
    }
    crate::domain::context::canonical(body, limit).map_err(|e| ApiError::MalformedBody(e.0))
}

/// Whether a `Content-Type` value is JSON: `application/json` or
/// `application/<name>+json` (RFC 6839), type and subtype in any case (RFC 9110
/// §8.3.1), optionally followed by parameters after `;` (`charset=utf-8`).
/// `application/jsonfoo` is not JSON.
pub fn is_json_media_type(value: &str) -> bool {
    let essence = media_essence(value);
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    // RFC 9110 §5.6.2 `token` characters.
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !kind.eq_ignore_ascii_case("application") || !subtype.bytes().all(tchar) {
        return false;
    }
    let subtype = subtype.to_ascii_lowercase();
    subtype == "json"
        || subtype
            .strip_suffix("+json")
            .is_some_and(|name| !name.is_empty())
}

/// A `Content-Type` value without its parameters (`text/csv; charset=utf-8`
/// → `text/csv`), spaces and tabs around it trimmed.
pub fn media_essence(value: &str) -> &str {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim_matches([' ', '\t'])
}

/// A UTF-8 text body (campaign YAML).
pub fn text(body: &[u8]) -> Result<&str, ApiError> {
    std::str::from_utf8(body)
        .map_err(|_| ApiError::MalformedBody("the body is not UTF-8 text".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn context_is_canonical() {
        let req = TestRequest::default().to_http_request();
        let a = spin_context(&req, br#"{ "b": 1, "a": {"y": 2, "x": 3} }"#, 4096).unwrap();
        let b = spin_context(&req, br#"{"a":{"x":3,"y":2},"b":1}"#, 4096).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, r#"{"a":{"x":3,"y":2},"b":1}"#);
    }

    #[test]
    fn json_media_types() {
        for json in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=UTF-8",
            " application/json ",
            "application/problem+json",
            "application/vnd.shop.spin+JSON; v=2",
        ] {
            assert!(is_json_media_type(json), "{json:?}");
        }
        for other in [
            "",
            "application/jsonfoo",
            "application/json-seq",
            "application/jsonp",
            "application/x-json+xml",
            "application/+json",
            "application/json/x",
            "application /json",
            "application/ json",
            "text/json",
            "json",
            "application",
            "applicationx/json",
        ] {
            assert!(!is_json_media_type(other), "{other:?}");
        }
    }

    #[test]
    fn context_must_be_an_object() {
        let req = TestRequest::default().to_http_request();
        assert_eq!(spin_context(&req, b"  ", 4096).unwrap(), "");
        assert!(spin_context(&req, b"[1]", 4096).is_err());
        assert!(spin_context(&req, b"{", 4096).is_err());
        let xml = TestRequest::default()
            .insert_header(("content-type", "text/xml"))
            .to_http_request();
        assert!(matches!(
            spin_context(&xml, b"{}", 4096),
            Err(ApiError::UnsupportedMediaType(_))
        ));
    }
}
