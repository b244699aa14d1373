//! Messages worded from the workflow's templates for a case: placeholders filled from the case, the command's data (its labels), the department and the time in China; and the text of a case's current order for its printed sheet.

use serde_json::{Map, Value, json};

use super::{CaseSnapshot, Context};
use crate::domain::DepartmentId;
use crate::time::local_time;
use crate::workflow::CommandDef;

pub(super) fn render(
    ctx: Context<'_>,
    case: &CaseSnapshot,
    spec: &CommandDef,
    data: &Map<String, Value>,
    reason: &str,
    department: Option<DepartmentId>,
    template: &str,
) -> (String, String) {
    let tpl = &ctx.definition.templates[template];
    let category = ctx.taxonomy.category(&case.category);
    let severity = ctx.taxonomy.severity(&case.severity);
    let state = ctx.definition.states.get(&case.state);
    let label = |field: &str| -> String {
        let Some(value) = data.get(field).and_then(Value::as_str) else {
            return String::new();
        };
        spec.fields
            .get(field)
            .and_then(|f| f.labels.get(value))
            .cloned()
            .unwrap_or_else(|| value.to_string())
    };
    let data_text = |field: &str| -> String {
        data.get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut result = label("result");
    if let Some(amount) = data.get("fine_amount").and_then(Value::as_f64) {
        result.push_str(&format!(" ¥{amount:.2}"));
    }
    let reason = match label("reason_code") {
        code if code.is_empty() => reason.to_string(),
        code if reason.is_empty() => code,
        code => format!("{code}: {reason}"),
    };
    let fill = |text: &str| -> String {
        let mut out = String::with_capacity(text.len() + 64);
        let mut rest = text;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let name = &after[..end];
            let value = match name {
                "case_id" => case.id.to_string(),
                "order_no" => case.order_no.to_string(),
                "address" => case.address.clone(),
                "category_zh" => category.map(|c| c.zh.clone()).unwrap_or_default(),
                "category_en" => category.map(|c| c.en.clone()).unwrap_or_default(),
                "legal_basis" => category.map(|c| c.legal_basis.clone()).unwrap_or_default(),
                "severity_zh" => severity.map(|s| s.zh.clone()).unwrap_or_default(),
                "severity_en" => severity.map(|s| s.en.clone()).unwrap_or_default(),
                "deadline" => match case.deadline_at {
                    Some(at) => local_time(at),
                    None if case.order_hours > 0 => format!(
                        "自送达之日起{}小时内 / within {} hours of service",
                        case.order_hours, case.order_hours
                    ),
                    None => String::new(),
                },
                "requirements" => data
                    .get("requirements")
                    .and_then(Value::as_str)
                    .map(|r| format!("\n整改要求 Requirements: {r}"))
                    .unwrap_or_default(),
                "department" => department
                    .and_then(|d| ctx.routing.get(d))
                    .map(|d| d.name.clone())
                    .unwrap_or_default(),
                "reason" => reason.clone(),
                "result" => result.clone(),
                "state_zh" => state.map(|s| s.zh.clone()).unwrap_or_default(),
                "state_en" => state.map(|s| s.en.clone()).unwrap_or_default(),
                "notice_zh" => data_text("zh"),
                "notice_en" => data_text("en"),
                "level" => label("level"),
                other => format!("{{{other}}}"),
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    };
    (fill(&tpl.subject), fill(tpl.body.trim()))
}

/// The subject and text of a case's current order, as its `rectification_order`
/// message would carry them, for the printed sheet of an order that no message
/// carried (served in person: nobody was on record to notify). `requirements` are
/// those the order was issued with. `None` when the definition has no such template.
pub fn order_text(
    ctx: Context<'_>,
    case: &CaseSnapshot,
    requirements: Option<&str>,
) -> Option<(String, String)> {
    const TEMPLATE: &str = "rectification_order";
    ctx.definition.templates.get(TEMPLATE)?;
    let spec = ctx.definition.commands.get("notify")?;
    let mut data = Map::new();
    if let Some(r) = requirements.filter(|r| !r.is_empty()) {
        data.insert("requirements".into(), json!(r));
    }
    Some(render(
        ctx,
        case,
        spec,
        &data,
        "",
        case.department_id,
        TEMPLATE,
    ))
}
