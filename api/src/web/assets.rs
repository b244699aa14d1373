//! Assets compiled into the binary (no CDN: inspectors' networks and this machine have none): Leaflet 1.9.4, heic2any 0.0.4 and Apache ECharts 6.1.0 from the npm registry, with their licences, and Anju's own scripts (forms kept offline and sent again; the dashboard's charts) and service worker (pages readable offline).

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const LEAFLET_JS: &str = include_str!("../../assets/leaflet/leaflet.js");
const LEAFLET_CSS: &str = include_str!("../../assets/leaflet/leaflet.css");
const ANJU_JS: &str = include_str!("../../assets/anju/anju.js");
const HEIC2ANY_JS: &str = include_str!("../../assets/heic2any/heic2any.min.js");
const ECHARTS_JS: &str = include_str!("../../assets/echarts/echarts.min.js");
const DASHBOARD_JS: &str = include_str!("../../assets/anju/dashboard.js");
const PLAN_JS: &str = include_str!("../../assets/anju/plan.js");
const HEIC_FRAME_HTML: &str = include_str!("../../assets/anju/heic.html");
const HEIC_FRAME_JS: &str = include_str!("../../assets/anju/heic-frame.js");
const SERVICE_WORKER: &str = include_str!("../../assets/anju/sw.js");

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The binary's assets change only with the binary.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    r
}

pub(super) async fn leaflet_js() -> Response {
    asset(LEAFLET_JS, "text/javascript; charset=utf-8")
}

pub(super) async fn leaflet_css() -> Response {
    asset(LEAFLET_CSS, "text/css; charset=utf-8")
}

pub(super) async fn anju_js() -> Response {
    asset(ANJU_JS, "text/javascript; charset=utf-8")
}

/// heic2any 0.0.4 (npm, MIT): HEIC photos decoded in the browser, loaded only when one
/// is chosen.
pub(super) async fn heic2any_js() -> Response {
    asset(HEIC2ANY_JS, "text/javascript; charset=utf-8")
}

/// The HEIC converter's frame: its own policy lets heic2any's decoder (which builds
/// functions from strings, in a worker made from a blob) run, framed by this service's
/// pages only; the pages' own policy allows no eval.
pub(super) async fn heic_frame() -> Response {
    let mut r = asset(HEIC_FRAME_HTML, "text/html; charset=utf-8");
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self' 'unsafe-eval' blob:; worker-src blob:; \
             connect-src 'self' blob: data:; img-src blob: data:; base-uri 'none'; \
             form-action 'none'; frame-ancestors 'self'",
        ),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    r
}

/// The script of the HEIC converter's frame.
pub(super) async fn heic_frame_js() -> Response {
    asset(HEIC_FRAME_JS, "text/javascript; charset=utf-8")
}

/// The plan page's map, drawn from the JSON the page carries.
pub(super) async fn plan_js() -> Response {
    asset(PLAN_JS, "text/javascript; charset=utf-8")
}

/// Apache ECharts 6.1.0 (npm, Apache-2.0), for the dashboard's charts and street map.
pub(super) async fn echarts_js() -> Response {
    asset(ECHARTS_JS, "text/javascript; charset=utf-8")
}

/// The dashboard's script: draws the charts and the map from the data the page carries.
pub(super) async fn dashboard_js() -> Response {
    asset(DASHBOARD_JS, "text/javascript; charset=utf-8")
}

/// The service worker, at the root so that it may keep every page; always checked
/// for a newer one.
pub(super) async fn service_worker() -> Response {
    let mut r = asset(SERVICE_WORKER, "text/javascript; charset=utf-8");
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The map's tiles: their URL template (`https://…/{z}/{x}/{y}.png`), the datum they
/// are drawn in (AMap: GCJ-02; Tianditu: WGS-84, which also needs its key in the URL),
/// and their attribution. Without a URL the maps draw on a plain background.
#[derive(Debug, Clone, Default)]
pub struct MapSettings {
    pub tile_url: Option<String>,
    /// The tiles are in GCJ-02 (points are shifted to it before drawing).
    pub gcj02: bool,
    pub attribution: String,
}

impl MapSettings {
    /// A WGS-84 point as the tiles draw it, as `[lat, lon]`.
    pub fn place(&self, lon: f64, lat: f64) -> [f64; 2] {
        let (lon, lat) = if self.gcj02 {
            anju_engine::spatial::crs::gcj02_from_wgs84(lon, lat)
        } else {
            (lon, lat)
        };
        [lat, lon]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_drawn_in_the_tiles_datum() {
        let (lon, lat) = (113.3245, 23.1181);
        let plain = MapSettings::default();
        assert_eq!(plain.place(lon, lat), [lat, lon]);
        let amap = MapSettings {
            gcj02: true,
            ..MapSettings::default()
        };
        let [glat, glon] = amap.place(lon, lat);
        // In Guangzhou GCJ-02 lies a few hundred metres from WGS-84.
        let shift_m = ((glon - lon) * 102_000.0).hypot((glat - lat) * 111_000.0);
        assert!((200.0..900.0).contains(&shift_m), "{shift_m}");
    }
}
