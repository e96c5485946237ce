//! The embedded web client as a browser fetches it: the page at `/` and at client routes, its
//! assets with the right content types, a strict Content-Security-Policy, JSON 404s for unknown
//! assets, and the server's own paths never shadowed by the page.

mod common;

use common::TestNode;
use reqwest::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    X_CONTENT_TYPE_OPTIONS,
};

const HTML: &str = "text/html,application/xhtml+xml,*/*;q=0.8";

fn header(resp: &reqwest::Response, name: reqwest::header::HeaderName) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_types_and_a_strict_csp() -> anyhow::Result<()> {
    let node = TestNode::start().await?;

    let page = node
        .http
        .get(node.url("/"))
        .header(ACCEPT, HTML)
        .send()
        .await?;
    assert_eq!(page.status(), 200);
    assert_eq!(header(&page, CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(header(&page, CACHE_CONTROL), "no-cache");
    let csp = header(&page, CONTENT_SECURITY_POLICY);
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(
        csp.contains(&format!("ws://{}", node.addr)),
        "WebSockets to this host are allowed: {csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header(&page, X_CONTENT_TYPE_OPTIONS), "nosniff");
    let body = page.text().await?;
    assert!(body.contains(r#"<script type="module" src="/assets/js/main.js">"#));
    assert!(!body.contains("<script>"), "no inline script");

    for (path, kind) in [
        ("/assets/js/main.js", "text/javascript; charset=utf-8"),
        ("/assets/js/views/room.js", "text/javascript; charset=utf-8"),
        ("/assets/app.css", "text/css; charset=utf-8"),
        ("/assets/icon.svg", "image/svg+xml"),
    ] {
        let resp = node.http.get(node.url(path)).send().await?;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(header(&resp, CONTENT_TYPE), kind, "{path}");
        assert!(!header(&resp, CONTENT_SECURITY_POLICY).is_empty(), "{path}");
        let tag = header(&resp, ETAG);
        assert!(!tag.is_empty(), "{path}");
        // A revalidation with the same tag is a 304 without a body.
        let again = node
            .http
            .get(node.url(path))
            .header(IF_NONE_MATCH, &tag)
            .send()
            .await?;
        assert_eq!(again.status(), 304, "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn unknown_assets_are_json_404s_and_server_paths_are_not_shadowed() -> anyhow::Result<()> {
    let node = TestNode::start().await?;

    for path in [
        "/assets/nope.js",
        "/assets/index.html",
        "/assets/js/",
        "/assets/",
    ] {
        let resp = node
            .http
            .get(node.url(path))
            .header(ACCEPT, HTML)
            .send()
            .await?;
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(header(&resp, CONTENT_TYPE), "application/json", "{path}");
        let body: serde_json::Value = resp.json().await?;
        assert_eq!(body["error"]["code"], "NOT_FOUND", "{path}");
    }

    // Client routes asked for as HTML get the page (a reload of /rooms/123 works) ...
    let deep = node
        .http
        .get(node.url("/rooms/123"))
        .header(ACCEPT, HTML)
        .send()
        .await?;
    assert_eq!(deep.status(), 200);
    assert_eq!(header(&deep, CONTENT_TYPE), "text/html; charset=utf-8");
    // ... but not when something else is asked for.
    let json = node.http.get(node.url("/rooms/123")).send().await?;
    assert_eq!(json.status(), 404);

    // The server's own paths answer as before, even for a browser.
    let (status, body) = node.get("/api/v1/no-such-endpoint", None).await?;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "NOT_FOUND");
    let api_html = node
        .http
        .get(node.url("/api/v1/rooms"))
        .header(ACCEPT, HTML)
        .send()
        .await?;
    assert_eq!(api_html.status(), 401, "the API, not the page");
    let health = node
        .http
        .get(node.url("/healthz"))
        .header(ACCEPT, HTML)
        .send()
        .await?;
    assert_eq!(health.status(), 200);
    assert_eq!(header(&health, CONTENT_TYPE), "application/json");
    let metrics = node
        .http
        .get(node.url("/metrics"))
        .header(ACCEPT, HTML)
        .send()
        .await?;
    assert_eq!(metrics.status(), 200);
    assert!(!header(&metrics, CONTENT_TYPE).starts_with("text/html"));
    let ws = node
        .http
        .get(node.url("/ws"))
        .header(ACCEPT, HTML)
        .send()
        .await?;
    assert_ne!(
        ws.status(),
        200,
        "/ws without an upgrade is refused, not the page"
    );

    // Only GET and HEAD are the page's.
    let post = node
        .http
        .post(node.url("/"))
        .header(ACCEPT, HTML)
        .send()
        .await?;
    assert_eq!(post.status(), 404);
    let head = node.http.head(node.url("/")).send().await?;
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, CONTENT_TYPE), "text/html; charset=utf-8");
    Ok(())
}
