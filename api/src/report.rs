//! Statistics as people and machines take them: JSON (and the map of open hazards as GeoJSON), and one table (a row per total, category, severity, department, inspector and star grade; a column per figure, headed in Chinese and English) written as CSV with a byte-order mark or as an Excel workbook.

use std::collections::BTreeMap;

use anju_engine::runtime::Statistics;
use anju_engine::runtime::dashboard::HazardMap;
use anju_engine::stats::{CaseFigures, VisitFigures};
use anju_engine::taxonomy::Taxonomy;
use serde_json::{Value, json};

/// Enforcement results, in the order of the workflow, with their Chinese names.
const RESULTS: &[(&str, &str, &str)] = &[
    ("warning", "警告", "warning"),
    ("fine", "罚款", "fine"),
    ("sealing", "查封", "sealing"),
    ("order_stop_use", "责令停止使用", "order to stop use"),
    ("prosecution", "立案查处", "prosecution"),
    ("rectified_on_site", "当场整改", "rectified on site"),
    ("no_violation", "未发现违法", "no violation"),
];

/// The case figures' columns: (JSON key, Chinese, English).
const CASE_COLUMNS: &[(&str, &str, &str)] = &[
    ("found", "发现隐患", "found"),
    ("orders_issued", "下发整改", "orders issued"),
    ("fixed", "已整改", "fixed"),
    ("fixed_on_time", "按期整改", "fixed on time"),
    ("overdue", "逾期", "overdue"),
    ("referred", "转办", "referred"),
    ("accepted", "受理", "accepted"),
    ("accepted_in_sla", "按时受理", "accepted in time"),
    ("sla_breached", "超时未受理", "not accepted in time"),
    ("returned", "退回", "returned"),
    ("closed_not_fixed", "未整改结案", "closed not fixed"),
    ("dismissed", "非隐患", "not a hazard"),
    ("duplicates", "重复", "duplicates"),
    ("cancelled", "撤销", "cancelled"),
    ("reopened", "重新打开", "reopened"),
    ("objections", "异议及延期申请", "objections"),
    ("objections_granted", "准予", "granted"),
    ("objections_refused", "驳回", "refused"),
    ("fines_yuan", "罚款金额(元)", "fines (yuan)"),
    ("median_days_to_fix", "整改天数中位数", "median days to fix"),
    ("p90_days_to_fix", "整改天数P90", "p90 days to fix"),
];

const VISIT_COLUMNS: &[(&str, &str, &str)] = &[
    ("visits", "巡查", "visits"),
    ("attempts", "未遇或拒访", "attempts"),
    ("off_site", "异地记录", "off site"),
    ("unlocated", "无定位", "no position"),
    ("planned", "计划巡查", "planned"),
    ("planned_done", "计划完成", "planned done"),
    ("off_site_rate", "异地率", "off-site rate"),
    ("plan_completion", "计划完成率", "plan completion"),
];

const GRADE_COLUMNS: &[(&str, &str, &str)] = &[
    ("stars_gained", "升星", "stars gained"),
    ("stars_lost", "降星", "stars lost"),
    ("units", "单位数", "units"),
];

/// Case figures with the department SLA rate.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct CaseFiguresOut<'a> {
    #[serde(flatten)]
    figures: &'a CaseFigures,
    /// Accepted within the time limit over accepted or not in time.
    sla_rate: Option<f64>,
}

fn case_out(f: &CaseFigures) -> CaseFiguresOut<'_> {
    CaseFiguresOut {
        figures: f,
        sla_rate: f.sla_rate(),
    }
}

/// A category's figures.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct CategoryOut<'a> {
    #[serde(flatten)]
    figures: CaseFiguresOut<'a>,
    category: &'a str,
    zh: Option<&'a str>,
    en: Option<&'a str>,
}

/// A severity's figures.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SeverityOut<'a> {
    #[serde(flatten)]
    figures: CaseFiguresOut<'a>,
    severity: &'a str,
    zh: Option<&'a str>,
    en: Option<&'a str>,
}

/// A department's figures (its referrals).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct DepartmentFiguresOut<'a> {
    #[serde(flatten)]
    figures: CaseFiguresOut<'a>,
    department_id: i64,
    name: Option<&'a str>,
}

/// An inspector's visits.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct InspectorFiguresOut<'a> {
    #[serde(flatten)]
    figures: &'a VisitFigures,
    inspector_id: i64,
    name: Option<&'a str>,
}

/// Graded units by stars now, and the stars gained and lost in the period.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct GradesFiguresOut {
    /// Stars (`"1"` to `"5"`) → units.
    distribution: BTreeMap<String, i64>,
    stars_gained: i64,
    stars_lost: i64,
}

/// The statistics of an area over a period, as JSON.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct StatisticsOut<'a> {
    /// `city`, `district:<code>`, `street:<id>`, `community:<id>`, `grid:<id>` or `grids`.
    area: String,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    /// A department's own referrals only.
    department_id: Option<i64>,
    /// Events and visits not yet counted.
    pending: i64,
    cases: CaseFiguresOut<'a>,
    by_category: Vec<CategoryOut<'a>>,
    by_severity: Vec<SeverityOut<'a>>,
    departments: Vec<DepartmentFiguresOut<'a>>,
    visits: &'a VisitFigures,
    inspectors: Vec<InspectorFiguresOut<'a>>,
    grades: GradesFiguresOut,
}

/// The statistics as JSON.
pub fn statistics_json(s: &Statistics, taxonomy: &Taxonomy) -> Value {
    let f = &s.figures;
    json!(StatisticsOut {
        area: s.area.label(),
        from: s.from,
        to: s.to,
        department_id: s.department,
        pending: s.pending,
        cases: case_out(&f.total.cases),
        by_category: f
            .by_category
            .iter()
            .map(|(code, c)| {
                let cat = taxonomy.category(code);
                CategoryOut {
                    figures: case_out(c),
                    category: code,
                    zh: cat.map(|c| c.zh.as_str()),
                    en: cat.map(|c| c.en.as_str()),
                }
            })
            .collect(),
        by_severity: f
            .by_severity
            .iter()
            .map(|(code, c)| {
                let sev = taxonomy.severities.get(code);
                SeverityOut {
                    figures: case_out(c),
                    severity: code,
                    zh: sev.map(|s| s.zh.as_str()),
                    en: sev.map(|s| s.en.as_str()),
                }
            })
            .collect(),
        departments: f
            .by_department
            .iter()
            .map(|(id, c)| DepartmentFiguresOut {
                figures: case_out(c),
                department_id: *id,
                name: s.department_names.get(id).map(String::as_str),
            })
            .collect(),
        visits: &f.total.visits,
        inspectors: f
            .by_inspector
            .iter()
            .map(|(id, v)| InspectorFiguresOut {
                figures: v,
                inspector_id: *id,
                name: s.inspector_names.get(id).map(String::as_str),
            })
            .collect(),
        grades: GradesFiguresOut {
            distribution: s.stars.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            stars_gained: f.total.stars_gained,
            stars_lost: f.total.stars_lost,
        },
    })
}

/// The map of open hazards as a GeoJSON FeatureCollection: a feature per street of
/// the area, its outline as geometry (null for a street without grids), with its id
/// (`key`, as text, names the feature on the dashboard's map), name, district and open
/// cases, in all and by severity.
pub fn hazard_map_geojson(map: &HazardMap) -> Value {
    let features: Vec<Value> = map
        .streets
        .iter()
        .map(|s| {
            let geometry = s
                .street
                .outline
                .as_deref()
                .and_then(|g| serde_json::from_str::<Value>(g).ok())
                .unwrap_or(Value::Null);
            json!({
                "type": "Feature",
                "id": s.street.id.0,
                "geometry": geometry,
                "properties": {
                    "key": s.street.id.0.to_string(),
                    "street_id": s.street.id.0,
                    "code": s.street.code,
                    "name": s.street.name,
                    "district_code": s.street.district_code,
                    "open": s.total,
                    "by_severity": s.open,
                },
            })
        })
        .collect();
    json!({
        "type": "FeatureCollection",
        "area": map.area.label(),
        "features": features,
    })
}

/// A cell of the table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Number(f64),
    Empty,
}

impl Cell {
    fn of(v: Option<&Value>) -> Cell {
        match v {
            Some(Value::Number(n)) => n.as_f64().map_or(Cell::Empty, Cell::Number),
            Some(Value::String(s)) => Cell::Text(s.clone()),
            _ => Cell::Empty,
        }
    }
}

/// The statistics as one table: the header, then a row per total, category, severity,
/// department, inspector and star grade. Built from the JSON, so both say the same.
pub fn statistics_table(s: &Statistics, taxonomy: &Taxonomy) -> (Vec<String>, Vec<Vec<Cell>>) {
    let j = statistics_json(s, taxonomy);
    let result_columns: Vec<(String, String)> = RESULTS
        .iter()
        .map(|(k, zh, en)| (format!("result_{k}"), format!("{zh} {en}")))
        .collect();
    let mut header = vec![
        "分组 section".to_string(),
        "代码 key".to_string(),
        "名称 name".to_string(),
    ];
    let columns: Vec<(&str, &str, &str)> = CASE_COLUMNS
        .iter()
        .chain(VISIT_COLUMNS)
        .chain(GRADE_COLUMNS)
        .copied()
        .collect();
    header.extend(columns.iter().map(|(_, zh, en)| format!("{zh} {en}")));
    header.extend(result_columns.iter().map(|(_, h)| h.clone()));
    let mut rows = Vec::new();
    let mut push = |section: &str, key: String, name: Option<&Value>, m: &Value| {
        let mut row = vec![Cell::Text(section.into()), Cell::Text(key), Cell::of(name)];
        for (k, _, _) in &columns {
            row.push(Cell::of(m.get(*k)));
        }
        for (k, _, _) in RESULTS {
            row.push(Cell::of(m.get("results").and_then(|r| r.get(*k))));
        }
        rows.push(row);
    };
    let mut total = j["cases"].clone();
    if let (Value::Object(t), Value::Object(v)) = (&mut total, &j["visits"]) {
        t.extend(v.clone());
        t.insert("stars_gained".into(), j["grades"]["stars_gained"].clone());
        t.insert("stars_lost".into(), j["grades"]["stars_lost"].clone());
    }
    push(
        "total",
        j["area"].as_str().unwrap_or("").to_string(),
        Some(&json!("合计 total")),
        &total,
    );
    for (section, list, key) in [
        ("category", "by_category", "category"),
        ("severity", "by_severity", "severity"),
    ] {
        for c in j[list].as_array().into_iter().flatten() {
            let name = format!(
                "{} {}",
                c["zh"].as_str().unwrap_or(""),
                c["en"].as_str().unwrap_or("")
            );
            push(
                section,
                c[key].as_str().unwrap_or("").to_string(),
                Some(&json!(name.trim())),
                c,
            );
        }
    }
    for (section, list, key) in [
        ("department", "departments", "department_id"),
        ("inspector", "inspectors", "inspector_id"),
    ] {
        for c in j[list].as_array().into_iter().flatten() {
            push(section, c[key].to_string(), c.get("name"), c);
        }
    }
    let mut stars: BTreeMap<String, Value> = BTreeMap::new();
    if let Some(d) = j["grades"]["distribution"].as_object() {
        for (k, v) in d {
            stars.insert(k.clone(), json!({ "units": v }));
        }
    }
    for (k, v) in stars {
        push(
            "stars",
            k.clone(),
            Some(&json!(format!("{k}星 {k} stars"))),
            &v,
        );
    }
    (header, rows)
}

/// The table as CSV, with a UTF-8 byte-order mark so that Excel reads the Chinese.
pub fn statistics_csv(s: &Statistics, taxonomy: &Taxonomy) -> String {
    let (header, rows) = statistics_table(s, taxonomy);
    let field = |t: &str| {
        if t.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", t.replace('"', "\"\""))
        } else {
            t.to_string()
        }
    };
    let mut out = String::from("\u{feff}");
    out.push_str(
        &header
            .iter()
            .map(|h| field(h))
            .collect::<Vec<_>>()
            .join(","),
    );
    out.push_str("\r\n");
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .map(|c| match c {
                Cell::Text(t) => field(t),
                Cell::Number(n) => n.to_string(),
                Cell::Empty => String::new(),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// The table as an Excel workbook: the table on the first sheet (header frozen), the
/// area and period on the second.
pub fn statistics_xlsx(s: &Statistics, taxonomy: &Taxonomy) -> Result<Vec<u8>, String> {
    use rust_xlsxwriter::{Format, Workbook};
    let (header, rows) = statistics_table(s, taxonomy);
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let sheet = book.add_worksheet();
    let e = |e: rust_xlsxwriter::XlsxError| e.to_string();
    sheet.set_name("统计 Statistics").map_err(e)?;
    for (c, h) in header.iter().enumerate() {
        sheet
            .write_string_with_format(0, c as u16, h, &bold)
            .map_err(e)?;
    }
    for (r, row) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        for (c, cell) in row.iter().enumerate() {
            match cell {
                Cell::Text(t) => {
                    sheet.write_string(r, c as u16, t).map_err(e)?;
                }
                Cell::Number(n) => {
                    sheet.write_number(r, c as u16, *n).map_err(e)?;
                }
                Cell::Empty => {}
            }
        }
    }
    sheet.set_freeze_panes(1, 3).map_err(e)?;
    sheet.set_column_width(2, 24).map_err(e)?;
    let about = book.add_worksheet();
    about.set_name("说明 About").map_err(e)?;
    let lines = [
        ("区域 area", s.area.label()),
        ("起 from", s.from.to_string()),
        ("止 to", s.to.to_string()),
        (
            "部门 department",
            s.department.map(|d| d.to_string()).unwrap_or_default(),
        ),
        ("待统计 pending", s.pending.to_string()),
    ];
    for (r, (k, v)) in lines.iter().enumerate() {
        about
            .write_string_with_format(r as u32, 0, *k, &bold)
            .map_err(e)?;
        about.write_string(r as u32, 1, v).map_err(e)?;
    }
    book.save_to_buffer().map_err(e)
}
