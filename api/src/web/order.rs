//! The printable rectification order (整改通知书): an A4 page with print CSS — the document number of the issuing office and year, the party, the unit, the order's text (hazard, requirements, legal basis, deadline), the inspector, the issuing office with signature and seal lines, a proof-of-service slip (送达回证) to cut off, and the placard's QR code.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{DOCTYPE, PreEscaped, html};

use anju_engine::domain::CaseId;
use anju_engine::time::local_time;

use super::{Visitor, error_page};
use crate::state::AppState;

const PRINT_STYLE: &str = "body{font-family:'SimSun','Songti SC',serif;color:#000;margin:0;background:#eee}\
.sheet{background:#fff;width:210mm;min-height:297mm;margin:1rem auto;padding:20mm;box-sizing:border-box}\
h1{text-align:center;font-size:22pt;letter-spacing:.3em;margin:0 0 .2em}.en{text-align:center;font-size:10pt;margin:0}\
.docno{text-align:right;margin:.6em 0 1.2em}.body{white-space:pre-wrap;line-height:1.9;font-size:12pt}\
.sign{margin-top:2.5em;text-align:right;line-height:2.2}.qr{float:right;width:28mm;height:28mm;margin-left:6mm}\
.cut{border:0;border-top:1px dashed #000;margin:2em 0 1em}.receipt table{width:100%;border-collapse:collapse}\
.receipt td,.receipt th{border:1px solid #000;padding:.5em;text-align:left;font-size:11pt}\
.tools{text-align:center;margin:1rem}@page{size:A4;margin:0}\
@media print{body{background:#fff}.sheet{margin:0}.tools{display:none}}";

/// The case's current order as an A4 sheet; a case the visitor may not see, or one
/// without an order, is a page that does not exist.
pub(super) async fn order_page(
    State(app): State<AppState>,
    visitor: Visitor,
    Path(raw): Path<String>,
) -> Response {
    let Some(id) = raw.parse::<i64>().ok().filter(|id| *id > 0).map(CaseId) else {
        return error_page(anju_engine::Error::not_found("case", &raw).into());
    };
    let (case, message, sheet) = match app.runtime.printable_order(&visitor.principal, id).await {
        Ok(found) => found,
        Err(e) => return error_page(e.into()),
    };
    let s = &case.snapshot;
    let office = format!(
        "{}出租屋安全隐患整治工作办公室",
        sheet.district.as_deref().unwrap_or(&s.district_code)
    );
    let party = sheet.party.as_deref().unwrap_or("出租屋责任人");
    let docno = sheet
        .document_no
        .clone()
        .unwrap_or_else(|| format!("案件 {}-{}", s.id.0, s.order_no));
    // An order served in person was carried by no message: its text is rendered from
    // the workflow for the sheet.
    let body = match &message {
        Some(m) => m.body.trim().to_string(),
        None => app.runtime.order_text(&case).await.unwrap_or_default(),
    };
    let issued = sheet.issued_at.map(local_time).unwrap_or_default();
    let deadline = match s.deadline_at {
        Some(at) => local_time(at),
        None if s.order_hours > 0 => format!(
            "自送达之日起{}小时内 / within {} hours of service",
            s.order_hours, s.order_hours
        ),
        None => String::new(),
    };
    let markup = html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "整改通知书 " (docno) }
                style { (PreEscaped(PRINT_STYLE)) }
            }
            body {
                p.tools { a href={ "/cases/" (s.id.0) } { "返回案件 / Back to the case" } " · " button.print type="button" { "打印 / Print" } }
                article.sheet {
                    img.qr src={ "/u/" (sheet.public_code) "/qr.svg" } alt="出租屋公示二维码 / The unit's placard QR code";
                    h1 { "整改通知书" }
                    p.en { "Rectification order" }
                    p.docno { "文书编号 / No. " (docno) }
                    p { (party) "：" }
                    div.body { (body) }
                    p { "整改期限 / Deadline: " strong { (deadline) } }
                    p { "检查员 / Inspector: " (sheet.inspector.as_deref().unwrap_or("—")) }
                    div.sign {
                        (office) br;
                        "（盖章 / Seal）" br;
                        "签发人 / Signed by：________________" br;
                        "日期 / Date: " (issued)
                    }
                    hr.cut;
                    section.receipt {
                        h2 { "送达回证 / Proof of service" }
                        table {
                            tr { th { "送达文书 / Document" } td { "整改通知书 " (docno) } }
                            tr { th { "受送达人 / Served on" } td { (party) } }
                            tr { th { "送达地点 / Address" } td { (s.address) } }
                            tr { th { "送达方式 / Manner" } td { "直接送达 □  留置送达 □  电子送达 □" } }
                            tr { th { "受送达人签收 / Signature of the served" } td { "________________  年   月   日" } }
                            tr { th { "送达人 / Served by" } td { "________________  ________________" } }
                        }
                    }
                }
                script src="/assets/anju.js" defer {}
            }
        }
    };
    super::html_response(StatusCode::OK, markup)
}
