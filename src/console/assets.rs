//! The console's files, compiled in (`include_str!`: `cargo build` alone makes
//! a working console, no asset build step): one layout (`assets/layout.html`)
//! around each page's `<main>`, the stylesheet, the ES module and the icon.

use std::sync::LazyLock;

/// One file as served.
#[derive(Debug)]
pub struct Asset {
    pub content_type: &'static str,
    pub body: String,
    /// A strong validator: the quoted SHA-256 of the body (first 32 hex digits).
    pub etag: String,
}

impl Asset {
    fn new(content_type: &'static str, body: String) -> Self {
        let digest = crate::campaign::canonical::sha256_hex(&body);
        Asset {
            content_type,
            etag: format!("\"{}\"", &digest[..32]),
            body,
        }
    }
}

const HTML: &str = "text/html; charset=utf-8";
const LAYOUT: &str = include_str!("assets/layout.html");

/// A page: the layout with its title, its `data-page` (which the module reads
/// to know what to render) and its `<main>` content.
fn page(title: &str, name: &str, main: &str) -> Asset {
    let body = LAYOUT
        .replace("{title}", title)
        .replace("{page}", name)
        .replace("{main}", main.trim_end());
    Asset::new(HTML, body)
}

/// Every route under `/console` and its file.
static FILES: LazyLock<Vec<(&'static str, Asset)>> = LazyLock::new(|| {
    vec![
        (
            "/",
            page("Sign in", "sign-in", include_str!("assets/sign-in.html")),
        ),
        (
            "/campaigns",
            page(
                "Campaigns",
                "campaigns",
                include_str!("assets/campaigns.html"),
            ),
        ),
        (
            "/campaigns/{id}",
            page("Campaign", "campaign", include_str!("assets/campaign.html")),
        ),
        (
            "/campaigns/{id}/edit",
            page("Edit campaign", "edit", include_str!("assets/edit.html")),
        ),
        (
            "/finance/{id}",
            page("Finance", "finance", include_str!("assets/finance.html")),
        ),
        (
            "/assets/console.js",
            Asset::new(
                "text/javascript; charset=utf-8",
                include_str!("assets/console.js").to_owned(),
            ),
        ),
        (
            "/assets/console.css",
            Asset::new(
                "text/css; charset=utf-8",
                include_str!("assets/console.css").to_owned(),
            ),
        ),
        (
            "/assets/icon.svg",
            Asset::new("image/svg+xml", include_str!("assets/icon.svg").to_owned()),
        ),
    ]
});

static NOT_FOUND: LazyLock<Asset> = LazyLock::new(|| {
    page(
        "Not found",
        "not-found",
        include_str!("assets/not-found.html"),
    )
});

/// `(path under /console, file)` for each route.
pub fn routes() -> impl Iterator<Item = (&'static str, &'static Asset)> {
    FILES.iter().map(|(path, asset)| (*path, asset))
}

/// The page of a path the console does not have.
pub fn not_found() -> &'static Asset {
    &NOT_FOUND
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_fills_the_layout() {
        for (path, asset) in routes().chain([("404", not_found())]) {
            if asset.content_type == HTML {
                assert!(!asset.body.contains("{title}"), "{path}");
                assert!(!asset.body.contains("{main}"), "{path}");
                assert!(asset.body.contains("data-page=\""), "{path}");
            }
            assert_eq!(asset.etag.len(), 34, "{path}");
        }
    }
}
