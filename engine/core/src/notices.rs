//! Notices, pure: which supervisors a message goes to, a delivery's stable Message-ID, a message as an e-mail (text and HTML, Chinese first), and when a failed delivery is tried again or given up as a dead letter.

use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};

use crate::domain::Role;
use crate::rules::Level;

/// How a person is named as a recipient of deliveries (`party:12`, `inspector:3`,
/// `department:5`, `supervisor:2`): by the role they act in and its subject. The
/// inbox of a caller is what was addressed to this name. `None` for the system.
pub fn recipient(role: Role, subject: i64) -> Option<String> {
    let kind = match role {
        Role::Landlord => "party",
        Role::Inspector => "inspector",
        Role::Department => "department",
        Role::Supervisor => "supervisor",
        Role::System => return None,
    };
    Some(format!("{kind}:{subject}"))
}

/// Attempts a delivery gets; after the last failed one it is a dead letter, listed for
/// supervisors to send again.
pub const MAX_ATTEMPTS: i64 = 8;

/// The first wait after a failure; each further failure doubles it, up to `MAX_WAIT`.
const FIRST_WAIT_S: i64 = 30;
const MAX_WAIT_S: i64 = 6 * 3600;

/// The template of a blacklist proposal, which goes to the district supervisors who
/// decide it.
pub const BLACKLIST_PROPOSED: &str = "blacklist_proposed";

/// The supervisors a message to supervisors goes to: the level a rule asked for, else
/// the district's for a blacklist proposal (they decide it), else the street's (review
/// requests and rule notices). The store falls back to the district's where a street
/// has no supervisor.
pub fn supervisor_level(template: &str, asked: Option<Level>) -> Level {
    match asked {
        Some(level) => level,
        None if template == BLACKLIST_PROPOSED => Level::District,
        None => Level::Street,
    }
}

/// A delivery's Message-ID: the same outbox row to the same address on the same
/// channel always has the same one, so a message sent again after a crash is
/// recognisable as the same message.
pub fn message_id(outbox_id: i64, channel: &str, address: &str, domain: &str) -> String {
    let digest = Sha256::digest(format!("{channel}\n{address}").as_bytes());
    format!("anju.{outbox_id}.{}@{domain}", hex::encode(&digest[..6]))
}

/// What to do after a failed attempt (`attempts` counts it): try again at the time
/// given, or give up (`None`: a dead letter). `jitter` in [0, 1) spreads the retries of
/// many deliveries that failed together over up to a quarter of the wait.
pub fn retry_at(attempts: i64, now: DateTime<Utc>, jitter: f64) -> Option<DateTime<Utc>> {
    if attempts >= MAX_ATTEMPTS {
        return None;
    }
    let doublings = u32::try_from((attempts - 1).clamp(0, 20)).unwrap_or(20);
    let wait = FIRST_WAIT_S
        .saturating_mul(1_i64 << doublings)
        .min(MAX_WAIT_S);
    let spread = (wait as f64 * 0.25 * jitter.clamp(0.0, 1.0)) as i64;
    Some(now + TimeDelta::seconds(wait + spread))
}

/// A fixed spread in [0, 1) for a delivery's retries, from its id, so that deliveries
/// that failed together do not come back together.
pub fn jitter(delivery: i64) -> f64 {
    delivery.wrapping_mul(2_654_435_761).rem_euclid(1000) as f64 / 1000.0
}

/// A message as an e-mail.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// An outbox message as an e-mail: its subject and body (Chinese first, then English, as
/// the workflow's templates write them), a link to the case under the public address,
/// and for a rectification order how to acknowledge it. The HTML part holds the same
/// text, escaped.
pub fn mail(template: &str, subject: &str, body: &str, link: Option<&str>) -> Mail {
    let mut text = body.trim().to_string();
    if template == "rectification_order" {
        text.push_str(
            "\n\n签收方式：打开下方链接，登录安居后点击“签收”；整改完成后在同一页面报告整改情况。\
             \nTo acknowledge: open the link below, sign in to Anju and choose Acknowledge; report the fix on the same page once it is done.",
        );
    }
    if let Some(link) = link {
        text.push_str(&format!("\n\n查看 / View: {link}"));
    }
    text.push_str("\n\n— 安居 出租屋安全隐患闭环管理 / Anju rental safety");
    let mut html =
        String::from("<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>");
    html.push_str(&escape(subject));
    html.push_str("</title></head><body>");
    for paragraph in text.split("\n\n") {
        html.push_str("<p>");
        let lines: Vec<String> = paragraph.lines().map(|l| linked(l, link)).collect();
        html.push_str(&lines.join("<br>"));
        html.push_str("</p>");
    }
    html.push_str("</body></html>");
    Mail {
        subject: subject.to_string(),
        text,
        html,
    }
}

/// A line of text as HTML, the case link made a link.
fn linked(line: &str, link: Option<&str>) -> String {
    let escaped = escape(line);
    match link {
        Some(link) if line.contains(link) => {
            let href = escape(link);
            escaped.replace(&href, &format!("<a href=\"{href}\">{href}</a>"))
        }
        _ => escaped,
    }
}

/// Text made safe inside HTML elements and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn recipients_are_named_by_role_and_subject() {
        assert_eq!(recipient(Role::Landlord, 12).as_deref(), Some("party:12"));
        assert_eq!(
            recipient(Role::Supervisor, 2).as_deref(),
            Some("supervisor:2")
        );
        assert_eq!(recipient(Role::System, 0), None);
    }

    #[test]
    fn supervisors_are_chosen_by_the_rule_then_by_the_message() {
        assert_eq!(
            supervisor_level("rule_escalation", Some(Level::City)),
            Level::City
        );
        assert_eq!(supervisor_level(BLACKLIST_PROPOSED, None), Level::District);
        assert_eq!(supervisor_level("review_requested", None), Level::Street);
    }

    #[test]
    fn a_message_id_is_stable_per_row_address_and_channel() {
        let a = message_id(42, "email", "li@example.cn", "anju.example");
        assert_eq!(a, message_id(42, "email", "li@example.cn", "anju.example"));
        assert!(
            a.starts_with("anju.42.") && a.ends_with("@anju.example"),
            "{a}"
        );
        assert_ne!(a, message_id(43, "email", "li@example.cn", "anju.example"));
        assert_ne!(
            a,
            message_id(42, "email", "wang@example.cn", "anju.example")
        );
        assert_ne!(a, message_id(42, "sms", "li@example.cn", "anju.example"));
    }

    #[test]
    fn retries_back_off_with_jitter_then_stop() {
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
        let wait =
            |attempts, jitter| (retry_at(attempts, now, jitter).unwrap() - now).num_seconds();
        assert_eq!(wait(1, 0.0), 30);
        assert_eq!(wait(2, 0.0), 60);
        assert_eq!(wait(3, 0.0), 120);
        // Jitter adds up to a quarter of the wait.
        assert_eq!(wait(3, 0.999_999), 120 + 29);
        assert!(wait(MAX_ATTEMPTS - 1, 0.0) <= MAX_WAIT_S);
        assert_eq!(retry_at(MAX_ATTEMPTS, now, 0.5), None);
        let spread: Vec<f64> = (1..=4).map(jitter).collect();
        assert!(spread.iter().all(|j| (0.0..1.0).contains(j)), "{spread:?}");
        assert!(spread.windows(2).all(|w| w[0] != w[1]), "{spread:?}");
    }

    #[test]
    fn an_order_mail_says_how_to_acknowledge_and_links_the_case() {
        let link = "https://anju.example/cases/7?a=1&b=2";
        let m = mail(
            "rectification_order",
            "整改通知书 / Rectification order",
            "请于 2026-03-05 18:00 前完成整改。<b>\n\nFix it before 2026-03-05 18:00.",
            Some(link),
        );
        let zh = m.text.find("请于").unwrap();
        let en = m.text.find("Fix it").unwrap();
        assert!(zh < en, "Chinese first");
        assert!(m.text.contains("签收") && m.text.contains("To acknowledge"));
        assert!(m.text.contains(link));
        assert!(m.html.contains("&lt;b&gt;"), "text is escaped: {}", m.html);
        assert!(
            m.html
                .contains("<a href=\"https://anju.example/cases/7?a=1&amp;b=2\">")
        );
        let plain = mail("case_fixed", "s", "b", None);
        assert!(!plain.text.contains("签收方式") && !plain.text.contains("查看"));
    }
}
