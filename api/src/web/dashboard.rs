//! The supervisor's dashboard page: the statistics of the area the visitor oversees over a period (figures, charts by category, month, department and stars, drawn with ECharts from the binary) and the map of open hazards by street (the streets' outlines, coloured by open cases), each street a click away from its open cases.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Datelike, Months, NaiveDate};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use anju_engine::runtime::Statistics;
use anju_engine::runtime::dashboard::HazardMap;
use anju_engine::text::Day;
use anju_engine::time::china_time;

use super::{Visitor, error_page, page};
use crate::report::{hazard_map_geojson, statistics_json};
use crate::routes::stats::statistics_request;
use crate::state::AppState;

/// Months in the trend chart, ending with the period's last month.
const TREND_MONTHS: u32 = 6;

/// The page's query: an area and a period, as the statistics API takes them.
#[derive(Debug, Deserialize)]
pub(super) struct DashboardQuery {
    area: Option<String>,
    from: Option<Day>,
    to: Option<Day>,
}

/// The dashboard of the visitor's area (or an area within it) over a period (this
/// month by default).
pub(super) async fn dashboard(
    State(app): State<AppState>,
    visitor: Visitor,
    query: Result<Query<DashboardQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return error_page(
            anju_engine::Error::invalid("from", "a day is written YYYY-MM-DD").into(),
        );
    };
    let today = app.runtime.now().with_timezone(&china_time()).date_naive();
    let area = q.area.as_deref().filter(|a| !a.is_empty());
    let request = match statistics_request(area, q.from.map(|d| d.0), q.to.map(|d| d.0), today) {
        Ok(r) => r,
        Err(e) => return error_page(anju_engine::Error::from(e).into()),
    };
    let p = &visitor.principal;
    let s = match app.runtime.statistics(p, request.clone()).await {
        Ok(s) => s,
        Err(e) => return error_page(e.into()),
    };
    let map = match app.runtime.hazard_map(p, request.area.clone()).await {
        Ok(m) => m,
        Err(e) => return error_page(e.into()),
    };
    let mut trend = Vec::new();
    for (from, to) in trend_months(s.to) {
        let month = anju_engine::runtime::StatisticsRequest {
            from,
            to,
            ..request.clone()
        };
        match app.runtime.statistics(p, month).await {
            Ok(m) => trend.push(json!({
                "month": format!("{}-{:02}", from.year(), from.month()),
                "found": m.figures.total.cases.found,
                "fixed": m.figures.total.cases.fixed,
                "overdue": m.figures.total.cases.overdue,
            })),
            Err(e) => return error_page(e.into()),
        }
    }
    let taxonomy = app.runtime.taxonomy();
    let data = json!({
        "statistics": statistics_json(&s, taxonomy),
        "trend": trend,
        "map": hazard_map_geojson(&map),
    });
    page(
        StatusCode::OK,
        "监管看板 / Dashboard",
        Some(&visitor),
        html! {
            @if let Some(w) = app.runtime.calendar_warning(p) {
                @let last = w.last_day.map(|d| d.to_string()).unwrap_or_else(|| "—".into());
                @let next = w.years.last().map_or(0, |y| y + 1);
                p.err role="alert" {
                    "工作日历将于 " (last) " 到期（剩余 " (w.days_left.unwrap_or(0)) " 天）：" (next) " 年法定节假日尚未导入，跨年的工作日期限暂按仅周末休息计算。国务院办公厅公布后请导入（anju calendar import）。"
                    " / The working-day calendar ends on " (last) " (" (w.days_left.unwrap_or(0)) " days left): " (next) " is not imported, so working-day deadlines reaching into it count weekends only. Import it when the State Council publishes it (anju calendar import)."
                }
            }
            (period_form(&s, area))
            @if s.pending > 0 {
                p.err { "尚有 " (s.pending) " 条记录未计入，稍后刷新。 / " (s.pending) " records are not counted yet; refresh shortly." }
            }
            (figures(&s))
            div.charts {
                div #chart-trend .chart {}
                div #chart-category .chart {}
                div #chart-departments .chart {}
                div #chart-stars .chart {}
            }
            h2 { "未办结隐患分布（按街道） / Open hazards by street" }
            div #chart-map .chart .map {}
            (street_table(&map, taxonomy))
            (super::script_data("dashboard-data", &data))
            script src="/assets/echarts.min.js" {}
            script src="/assets/dashboard.js" {}
        },
    )
}

/// The whole months of the trend, oldest first, the last cut at `to`.
fn trend_months(to: NaiveDate) -> Vec<(NaiveDate, NaiveDate)> {
    let first = to.with_day(1).unwrap_or(to);
    (0..TREND_MONTHS)
        .rev()
        .filter_map(|back| {
            let from = first.checked_sub_months(Months::new(back))?;
            let end = from.checked_add_months(Months::new(1))?.pred_opt()?.min(to);
            Some((from, end))
        })
        .collect()
}

fn period_form(s: &Statistics, area: Option<&str>) -> Markup {
    html! {
        form method="get" action="/dashboard" class="period" {
            label { "区域 / Area "
                input type="text" name="area" value=(area.unwrap_or_default())
                    placeholder="city, district:440106, street:12 …";
            }
            label { "自 / From " input type="date" name="from" value=(s.from); }
            label { "至 / To " input type="date" name="to" value=(s.to); }
            button type="submit" { "查看 / Show" }
            " "
            a href={ "/api/v1/statistics?format=xlsx&area=" (s.area.label()) "&from=" (s.from) "&to=" (s.to) } { "导出 Excel / Export" }
        }
        p { small { (area_label(s)) " · " (s.from) " — " (s.to) } }
    }
}

fn area_label(s: &Statistics) -> String {
    match s.department {
        Some(d) => format!(
            "{}（本部门移交 / own referrals of department {d}）",
            s.area.label()
        ),
        None => s.area.label(),
    }
}

/// A percentage, or a dash where nothing was counted.
fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".into(), |r| format!("{:.1}%", r * 100.0))
}

fn figures(s: &Statistics) -> Markup {
    let c = &s.figures.total.cases;
    let v = &s.figures.total.visits;
    let on_time = (c.fixed > 0).then(|| c.fixed_on_time as f64 / c.fixed as f64);
    let days = |d: Option<i64>| d.map_or_else(|| "—".into(), |d| format!("{d} 天 days"));
    let tiles: [(&str, String); 12] = [
        ("发现隐患 / Found", c.found.to_string()),
        ("下发整改 / Orders", c.orders_issued.to_string()),
        ("已整改 / Fixed", c.fixed.to_string()),
        ("按期整改率 / Fixed on time", percent(on_time)),
        ("逾期 / Overdue", c.overdue.to_string()),
        ("移交部门 / Referred", c.referred.to_string()),
        ("按时受理率 / Accepted in time", percent(c.sla_rate())),
        ("罚款 / Fines", format!("¥{:.2}", c.fines_yuan)),
        ("整改天数中位 / Median days", days(c.median_days_to_fix)),
        ("整改天数 P90 / 90th pct days", days(c.p90_days_to_fix)),
        ("巡查 / Visits", v.visits.to_string()),
        ("计划完成率 / Plan done", percent(v.plan_completion)),
    ];
    html! {
        dl.tiles {
            @for (name, value) in &tiles {
                div { dt { (name) } dd { (value) } }
            }
        }
    }
}

/// The streets with their open cases, each linked to its open cases: the map's
/// content for those who do not read maps, and its click-through.
fn street_table(map: &HazardMap, taxonomy: &anju_engine::taxonomy::Taxonomy) -> Markup {
    let mut streets: Vec<_> = map.streets.iter().collect();
    streets.sort_by(|a, b| b.total.cmp(&a.total).then(a.street.id.cmp(&b.street.id)));
    html! {
        table #street-table {
            thead { tr { th { "街道 / Street" } th { "未办结 / Open" } th { "按严重程度 / By severity" } } }
            tbody {
                @for s in streets {
                    tr {
                        td { a href={ "/?street_id=" (s.street.id.0) "&open=true" } { (s.street.name) } }
                        td.open { (s.total) }
                        td {
                            @for (severity, n) in &s.open {
                                @let name = taxonomy.severities.get(severity).map_or(severity.as_str(), |v| v.zh.as_str());
                                (name) " " (n) " "
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trend_ends_with_the_periods_month_cut_at_its_last_day() {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let months = trend_months(d(2026, 3, 15));
        assert_eq!(months.len(), 6);
        assert_eq!(months[0], (d(2025, 10, 1), d(2025, 10, 31)));
        assert_eq!(months[4], (d(2026, 2, 1), d(2026, 2, 28)));
        assert_eq!(months[5], (d(2026, 3, 1), d(2026, 3, 15)));
    }
}
