//! A request whose body the service did not read to its end closes its
//! connection after the response.
//!
//! actix-http closes such a connection itself when the body has a
//! `Content-Length`, but a chunked body it drains, with no time bound: a client
//! that keeps sending a chunk now and then to any endpoint that answered early
//! (a 401, a 404, a 429, a 408 from `body::read_limited`) would hold the
//! connection for as long as it likes. actix closes instead of draining when the
//! request's payload is still alive as the response goes out, so the connection
//! keeps the payload of its latest request (in its connection data, set up by
//! [`on_connect`]) until the next request or the end of the connection. A body
//! read to its end changes nothing: keep-alive stays.

use actix_web::dev::{Extensions, Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage, body::MessageBody};
use futures_util::Stream;
use std::any::Any;
use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

/// The payload of the connection's latest request.
#[derive(Default)]
struct LatestPayload(RefCell<Option<Rc<RefCell<Payload>>>>);

/// For `HttpServer::on_connect`: gives each connection its slot.
pub fn on_connect(_: &dyn Any, data: &mut Extensions) {
    data.insert(LatestPayload::default());
}

/// Middleware: hands the handler its payload through a shared handle and keeps
/// the other in the connection's slot.
pub async fn keep_payload(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let payload = req.take_payload();
    match req.conn_data::<LatestPayload>() {
        Some(slot) if !matches!(payload, Payload::None) => {
            let shared = Rc::new(RefCell::new(payload));
            // Replaces (drops) the previous request's, answered by now.
            *slot.0.borrow_mut() = Some(shared.clone());
            req.set_payload(Payload::Stream {
                payload: Box::pin(Shared(shared)),
            });
        }
        _ => req.set_payload(payload),
    }
    next.call(req).await
}

/// The request's payload, read through the shared handle.
struct Shared(Rc<RefCell<Payload>>);

impl Stream for Shared {
    type Item = Result<Bytes, actix_web::error::PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_next(cx)
    }
}
