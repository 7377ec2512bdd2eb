//! The built client over HTTP: the files, the security headers every response carries, and
//! paths that cannot name a file answered without touching the disk.
//!
//! The Content-Security-Policy lets the page run only its own scripts: files from this origin,
//! the wasm (`'wasm-unsafe-eval'`), and the inline module script that starts it, allowed by its
//! SHA-256 hash — read from `index.html` when the server starts, so both page builds (ours and
//! trunk's) work without `'unsafe-inline'`.

use std::path::Path;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::Digest;

/// Longest file name Linux allows (NAME_MAX): a longer path segment names no file.
const MAX_SEGMENT_BYTES: usize = 255;
/// Longest path Linux allows (PATH_MAX): a longer one is refused as too long.
const MAX_PATH_BYTES: usize = 4096;

/// The headers every response gets.
#[derive(Clone)]
pub struct SecurityHeaders {
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl SecurityHeaders {
    /// The headers for the page in `static_dir` (its inline scripts' hashes go into the CSP).
    pub fn for_page(static_dir: &Path) -> SecurityHeaders {
        let html = std::fs::read_to_string(static_dir.join("index.html")).unwrap_or_default();
        let csp = content_security_policy(&inline_script_hashes(&html));
        let pairs = [
            (header::CONTENT_SECURITY_POLICY, csp.as_str()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // Legacy twin of frame-ancestors, for browsers that predate it.
            (header::X_FRAME_OPTIONS, "DENY"),
            // A room link may carry a join token: never send it on to another site.
            (header::REFERRER_POLICY, "no-referrer"),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                "same-origin",
            ),
            (
                HeaderName::from_static("permissions-policy"),
                "camera=(self), microphone=(self), display-capture=(self), geolocation=()",
            ),
        ];
        SecurityHeaders {
            headers: pairs
                .into_iter()
                .filter_map(|(name, value)| Some((name, HeaderValue::from_str(value).ok()?)))
                .collect(),
        }
    }
}

/// The policy: this origin only, wasm allowed, inline scripts only by hash, no framing.
fn content_security_policy(script_hashes: &[String]) -> String {
    let hashes: String = script_hashes
        .iter()
        .map(|h| format!(" 'sha256-{h}'"))
        .collect();
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{hashes}; \
         style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// The base64 SHA-256 of each inline `<script>`'s text in `html`, as CSP hashes them.
fn inline_script_hashes(html: &str) -> Vec<String> {
    let mut hashes = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find("<script") {
        let after_tag = &rest[open..];
        let Some(tag_end) = after_tag.find('>') else {
            break;
        };
        let tag = &after_tag[..tag_end];
        let body_start = &after_tag[tag_end + 1..];
        let Some(close) = body_start.find("</script>") else {
            break;
        };
        if !tag.contains(" src=") {
            let body = &body_start[..close];
            hashes
                .push(base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body)));
        }
        rest = &body_start[close..];
    }
    hashes
}

/// Adds the security headers to every response.
pub async fn add_headers(
    axum::extract::State(headers): axum::extract::State<SecurityHeaders>,
    req: Request,
    next: Next,
) -> Response {
    let mut response = next.run(req).await;
    for (name, value) in &headers.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// Answers a path that cannot name a file (a segment over NAME_MAX: 404; over PATH_MAX: 414)
/// before the file service asks the disk, which fails such names with an error, not "not found".
pub async fn refuse_impossible_paths(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path.len() > MAX_PATH_BYTES {
        return StatusCode::URI_TOO_LONG.into_response();
    }
    if path
        .split('/')
        .any(|segment| segment.len() > MAX_SEGMENT_BYTES)
    {
        return StatusCode::NOT_FOUND.into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_scripts_are_hashed_and_external_ones_are_not() {
        let html = "<script type=\"module\">\nimport init from '/c.js';\n</script>\
                    <script src=\"/x.js\"></script><script>alert(1)</script>";
        let hashes = inline_script_hashes(html);
        assert_eq!(hashes.len(), 2, "{hashes:?}");
        // sha256("alert(1)"), base64.
        assert_eq!(hashes[1], "bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI=");
        let csp = content_security_policy(&hashes);
        assert!(csp.contains("script-src 'self' 'wasm-unsafe-eval' 'sha256-"));
        assert!(csp.contains("'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline"));
    }
}
