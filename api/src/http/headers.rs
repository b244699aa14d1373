//! The security headers every answer carries unless its handler set its own: a Content-Security-Policy that lets only the service's own scripts run (so that one missed escape cannot run a script), no framing by other sites, no type sniffing, no referrer to other sites, and HSTS when the service is reached over https.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// The headers, built once when the service starts.
#[derive(Debug, Clone)]
pub struct Policy {
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Policy {
    /// The policy for a service reached over https or not, drawing map tiles from
    /// `tile_url` (a template such as `https://webrd0{s}.is.autonavi.com/…`).
    pub fn new(secure: bool, tile_url: Option<&str>) -> Policy {
        let tiles = tile_url.and_then(tile_origin).unwrap_or_default();
        // Styles may be inline (attributes and the pages' one <style>; no script can
        // run from a style); scripts only from the service's own files.
        let csp = format!(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data: blob:{tiles}; connect-src 'self'; worker-src 'self'; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        );
        let mut headers = vec![
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_str(&csp).expect("a policy of safe characters"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            ),
        ];
        if secure {
            headers.push((
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000; includeSubDomains"),
            ));
        }
        Policy { headers }
    }
}

/// The origin tiles come from, as a CSP source (` https://*.is.autonavi.com`): a
/// templated label (`webrd0{s}`) becomes `*`.
fn tile_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let host = rest.split(['/', '?']).next()?;
    let host: Vec<String> = host
        .split('.')
        .map(|label| {
            if label.contains('{') {
                "*".to_string()
            } else {
                label.to_string()
            }
        })
        .collect();
    let host = host.join(".");
    let safe = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-.*:[]".contains(&b));
    safe.then(|| format!(" {scheme}://{host}"))
}

/// Adds the policy's headers to an answer that has none of its own.
pub async fn apply(policy: Arc<Policy>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in &policy.headers {
        if !headers.contains_key(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_are_allowed_by_their_origin_only() {
        assert_eq!(
            tile_origin("https://webrd0{s}.is.autonavi.com/appmaptile?x={x}").as_deref(),
            Some(" https://*.is.autonavi.com")
        );
        assert_eq!(
            tile_origin("http://127.0.0.1:9000/{z}/{x}/{y}.png").as_deref(),
            Some(" http://127.0.0.1:9000")
        );
        assert_eq!(tile_origin("javascript:alert(1)"), None);
        assert_eq!(tile_origin("https://a.example;script-src *"), None);
        let policy = Policy::new(true, None);
        let csp = &policy.headers[0].1;
        assert!(csp.to_str().unwrap().contains("script-src 'self';"));
        assert!(
            policy
                .headers
                .iter()
                .any(|(n, _)| n == header::STRICT_TRANSPORT_SECURITY)
        );
        assert!(
            !Policy::new(false, None)
                .headers
                .iter()
                .any(|(n, _)| n == header::STRICT_TRANSPORT_SECURITY)
        );
    }
}
