//! Reading request bodies with a hard size bound, so an oversized body costs
//! at most `limit` bytes of memory and answers 413.

use super::error::ApiError;
use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web::{self, Bytes, BytesMut};
use futures_util::StreamExt;

/// Reads the whole body, refusing more than `limit` bytes (by `Content-Length`
/// up front, and while streaming for chunked bodies).
pub async fn read_limited(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::BodyTooLarge { limit });
    }
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
        if !ct.starts_with("application/json") {
            return Err(ApiError::UnsupportedMediaType(
                "the spin body must be application/json".into(),
            ));
        }
    }
    crate::domain::context::canonical(body, limit).map_err(|e| ApiError::MalformedBody(e.0))
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
