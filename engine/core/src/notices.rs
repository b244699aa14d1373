//! Notices, pure: which supervisors a message goes to, a delivery's stable Message-ID, a message as an e-mail (text and HTML, Chinese first) and as a registered SMS template, the quiet hours of SMS, and when a failed delivery is tried again or given up as a dead letter.

use chrono::{DateTime, TimeDelta, Timelike, Utc};
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

/// What a delivery says and the facts its templates fill in, read off the outbox
/// message and its case.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Notice<'a> {
    pub template: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub case: i64,
    /// The order's number within the case (0 before an order is issued).
    pub order_no: i64,
    pub address: &'a str,
    pub severity: &'a str,
    pub deadline_at: Option<DateTime<Utc>>,
    /// The name of the case's inspector.
    pub inspector: Option<&'a str>,
    /// The case's page under the public address.
    pub link: Option<&'a str>,
    /// A sign-in code, for the message that carries one.
    pub code: Option<&'a str>,
}

/// The link to a case under the public address (`ANJU_PUBLIC_URL`); the one URL scheme
/// of links in messages. A notice of the system, about no case (`SYSTEM_CASE`: the
/// calendar's end, say), links to the dashboard.
pub fn case_link(public_url: &str, case: i64) -> String {
    let base = public_url.trim_end_matches('/');
    if case == SYSTEM_CASE {
        format!("{base}/dashboard")
    } else {
        format!("{base}/cases/{case}")
    }
}

/// The case number of an outgoing message about no case: a notice of the system to the
/// city's supervisors (the working-day calendar nearing its end). No case has it.
pub const SYSTEM_CASE: i64 = 0;

/// The hour (China time) daily digests go out.
pub const DIGEST_HOUR: u32 = 18;

/// Whether a message may wait for the daily digest of a person who wants one: never a
/// referral, nor an order or an overdue notice of a critical hazard (sign-in codes never
/// pass through the outbox).
pub fn may_wait_for_digest(template: &str, severity: Option<&str>) -> bool {
    template != "referral"
        && !(URGENT_AT_NIGHT.contains(&template) && severity.is_none_or(|s| s == "critical"))
}

/// When the next daily digest after `now` goes out: 18:00 China time today, or
/// tomorrow once it has passed.
pub fn next_digest(now: DateTime<Utc>) -> DateTime<Utc> {
    let local = now.with_timezone(&crate::time::china_time());
    let (midnight, _) = crate::time::day_bounds(local.date_naive());
    let today = midnight + TimeDelta::hours(i64::from(DIGEST_HOUR));
    if now < today {
        today
    } else {
        today + TimeDelta::days(1)
    }
}

/// A digest's Message-ID, from its first delivery (the same group sent again after a
/// crash has the same id).
pub fn digest_message_id(
    first_delivery: i64,
    channel: &str,
    address: &str,
    domain: &str,
) -> String {
    let digest = Sha256::digest(format!("{channel}\n{address}").as_bytes());
    format!(
        "anju.digest.{first_delivery}.{}@{domain}",
        hex::encode(&digest[..6])
    )
}

/// One message listed in a digest: its case, subject and link.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestEntry<'a> {
    pub case: i64,
    pub subject: &'a str,
    pub link: Option<String>,
}

/// A daily digest's subject and body: the messages of the day, one line each, Chinese
/// first.
pub fn digest(entries: &[DigestEntry<'_>]) -> (String, String) {
    let n = entries.len();
    let subject = format!("安居每日摘要：{n} 条消息 / Anju daily digest: {n} messages");
    let mut body = String::from("以下是今天给您的消息： / Your messages of today:\n");
    for e in entries {
        body.push_str(&format!(
            "\n· 案件 {} / Case {}: {}",
            e.case, e.case, e.subject
        ));
        if let Some(link) = &e.link {
            body.push_str(&format!("\n  {link}"));
        }
    }
    body.push_str(
        "\n\n如需逐条接收，请在安居中更改通知设置。 / To receive messages one by one, change your notice preferences in Anju.",
    );
    (subject, body)
}

/// A message as an e-mail.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The HTML frame of every e-mail (`workflows/notices/mail.html`): `{{subject}}` and
/// `{{paragraphs}}` are filled in.
pub const MAIL_FRAME: &str = include_str!("../../../workflows/notices/mail.html");

/// An outbox message as an e-mail: its subject and body (Chinese first, then English, as
/// the workflow's templates write them), for a rectification order the inspector and how
/// to acknowledge it, and a link to the case under the public address. The HTML part
/// holds the same text, escaped, in the frame of `workflows/notices/mail.html`.
pub fn mail(n: &Notice<'_>) -> Mail {
    let mut text = n.body.trim().to_string();
    if n.template == "rectification_order" {
        if let Some(inspector) = n.inspector {
            text.push_str(&format!("\n\n检查员 / Inspector: {inspector}"));
        }
        text.push_str(
            "\n\n签收方式：打开下方链接，登录安居后点击“签收”；整改完成后在同一页面报告整改情况。\
             \nTo acknowledge: open the link below, sign in to Anju and choose Acknowledge; report the fix on the same page once it is done.",
        );
    }
    if let Some(link) = n.link {
        text.push_str(&format!("\n\n查看 / View: {link}"));
    }
    text.push_str("\n\n— 安居 出租屋安全隐患闭环管理 / Anju rental safety");
    let mut paragraphs = String::new();
    for paragraph in text.split("\n\n") {
        paragraphs.push_str("<p>");
        let lines: Vec<String> = paragraph.lines().map(|l| linked(l, n.link)).collect();
        paragraphs.push_str(&lines.join("<br>"));
        paragraphs.push_str("</p>\n");
    }
    let html = MAIL_FRAME
        .replace("{{subject}}", &escape(n.subject))
        .replace("{{paragraphs}}", &paragraphs);
    Mail {
        subject: n.subject.to_string(),
        text,
        html,
    }
}

/// The SMS templates registered with the gateway (`workflows/notices/sms.toml`).
pub const SMS_TEMPLATES: &str = include_str!("../../../workflows/notices/sms.toml");

/// One registered SMS template: its code and its text with `{name}` parameters.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsTemplate {
    pub code: String,
    pub text: String,
}

/// The registered SMS templates, by message template, and the one used for the rest.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsTemplates {
    pub fallback: SmsTemplate,
    #[serde(default)]
    pub templates: std::collections::BTreeMap<String, SmsTemplate>,
}

impl SmsTemplates {
    /// The templates shipped in `workflows/notices/sms.toml`.
    pub fn builtin() -> SmsTemplates {
        SmsTemplates::parse(SMS_TEMPLATES).expect("workflows/notices/sms.toml is valid")
    }

    /// Templates from TOML; every parameter used must be one a notice fills in.
    pub fn parse(text: &str) -> Result<SmsTemplates, String> {
        let t: SmsTemplates = toml::from_str(text).map_err(|e| e.to_string())?;
        for (name, tpl) in std::iter::once(("fallback", &t.fallback))
            .chain(t.templates.iter().map(|(k, v)| (k.as_str(), v)))
        {
            for p in parameters(&tpl.text) {
                if !SMS_PARAMETERS.contains(&p.as_str()) {
                    return Err(format!("SMS template `{name}`: unknown parameter {{{p}}}"));
                }
            }
        }
        Ok(t)
    }

    /// A notice as an SMS: the registered template for its message (else the fallback),
    /// the values of the template's parameters, and the text they make.
    pub fn render(&self, n: &Notice<'_>) -> Sms {
        let tpl = self.templates.get(n.template).unwrap_or(&self.fallback);
        let value = |p: &str| -> String {
            match p {
                "case" => n.case.to_string(),
                "order" => format!("{}-{}", n.case, n.order_no),
                "address" => n.address.to_string(),
                "deadline" => n
                    .deadline_at
                    .map(|d| {
                        d.with_timezone(&crate::time::china_time())
                            .format("%Y-%m-%d %H:%M")
                            .to_string()
                    })
                    .unwrap_or_else(|| "—".into()),
                "link" => n.link.unwrap_or("").to_string(),
                // The Chinese part of a bilingual subject.
                "subject" => n
                    .subject
                    .split(" / ")
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string(),
                "code" => n.code.unwrap_or("").to_string(),
                _ => String::new(),
            }
        };
        let mut params = std::collections::BTreeMap::new();
        let mut text = tpl.text.clone();
        for p in parameters(&tpl.text) {
            let v = value(&p);
            text = text.replace(&format!("{{{p}}}"), &v);
            params.insert(p, v);
        }
        Sms {
            template_code: tpl.code.clone(),
            params,
            text: text.trim().to_string(),
        }
    }
}

/// The parameters an SMS template may use.
const SMS_PARAMETERS: [&str; 7] = [
    "case", "order", "address", "deadline", "link", "subject", "code",
];

/// The `{name}` parameters of a template's text, in order, each once.
fn parameters(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let name = after[..close].to_string();
        if !out.contains(&name) {
            out.push(name);
        }
        rest = &after[close + 1..];
    }
    out
}

/// An SMS as a gateway sends it: a registered template's code, its parameters, and the
/// text they make (kept for the record and for gateways that want it).
#[derive(Debug, Clone, PartialEq)]
pub struct Sms {
    pub template_code: String,
    pub params: std::collections::BTreeMap<String, String>,
    pub text: String,
}

/// China time's quiet hours for SMS: none from 22:00 to 08:00.
const QUIET_FROM_HOUR: u32 = 22;
const QUIET_UNTIL_HOUR: u32 = 8;

/// The messages that may reach a phone at night, when their hazard is critical.
const URGENT_AT_NIGHT: [&str; 2] = ["rectification_order", "order_overdue"];

/// When an SMS written at `now` may be sent: `None` at once, else 08:00 China time.
/// Orders and overdue notices of critical hazards are sent at any hour.
pub fn quiet_until(now: DateTime<Utc>, template: &str, severity: &str) -> Option<DateTime<Utc>> {
    if severity == "critical" && URGENT_AT_NIGHT.contains(&template) {
        return None;
    }
    let local = now.with_timezone(&crate::time::china_time());
    let hour = local.hour();
    if (QUIET_UNTIL_HOUR..QUIET_FROM_HOUR).contains(&hour) {
        return None;
    }
    let day = if hour >= QUIET_FROM_HOUR {
        local.date_naive() + TimeDelta::days(1)
    } else {
        local.date_naive()
    };
    let (midnight, _) = crate::time::day_bounds(day);
    Some(midnight + TimeDelta::hours(i64::from(QUIET_UNTIL_HOUR)))
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

    fn notice<'a>(template: &'a str, body: &'a str, link: Option<&'a str>) -> Notice<'a> {
        Notice {
            template,
            subject: "整改通知书 第7-1号 / Rectification order 7-1",
            body,
            case: 7,
            order_no: 1,
            address: "天河区龙口西路1号101",
            severity: "major",
            deadline_at: Some(Utc.with_ymd_and_hms(2026, 3, 5, 10, 0, 0).unwrap()),
            inspector: Some("李明"),
            link,
            code: None,
        }
    }

    #[test]
    fn an_order_mail_says_how_to_acknowledge_and_links_the_case() {
        let link = "https://anju.example/cases/7?a=1&b=2";
        let m = mail(&notice(
            "rectification_order",
            "请于 2026-03-05 18:00 前完成整改。<b>\n\nFix it before 2026-03-05 18:00.",
            Some(link),
        ));
        let zh = m.text.find("请于").unwrap();
        let en = m.text.find("Fix it").unwrap();
        assert!(zh < en, "Chinese first");
        assert!(m.text.contains("签收") && m.text.contains("To acknowledge"));
        assert!(m.text.contains("检查员 / Inspector: 李明"));
        assert!(m.text.contains(link));
        assert!(m.html.contains("&lt;b&gt;"), "text is escaped: {}", m.html);
        assert!(
            m.html.contains("<title>整改通知书 第7-1号"),
            "framed: {}",
            m.html
        );
        assert!(
            m.html
                .contains("<a href=\"https://anju.example/cases/7?a=1&amp;b=2\">")
        );
        let plain = mail(&notice("case_fixed", "b", None));
        assert!(!plain.text.contains("签收方式") && !plain.text.contains("查看"));
        assert!(!plain.text.contains("检查员"));
    }

    #[test]
    fn an_sms_is_a_registered_template_with_its_parameters() {
        let t = SmsTemplates::builtin();
        let link = "https://anju.example/cases/7";
        let sms = t.render(&notice("rectification_order", "long body", Some(link)));
        assert_eq!(sms.template_code, "ANJU_ORDER");
        assert_eq!(sms.params["order"], "7-1");
        // 10:00 UTC is 18:00 in China.
        assert_eq!(sms.params["deadline"], "2026-03-05 18:00");
        assert!(sms.text.contains("2026-03-05 18:00") && sms.text.contains(link));
        assert!(!sms.text.contains('{'), "{}", sms.text);
        // A message without its own template falls back to the definition's subject.
        let other = t.render(&notice("review_required", "body", Some(link)));
        assert_eq!(other.template_code, "ANJU_NOTICE");
        assert_eq!(other.params["subject"], "整改通知书 第7-1号");
        assert!(
            SmsTemplates::parse("[fallback]\ncode = \"X\"\ntext = \"{password}\"\n")
                .unwrap_err()
                .contains("{password}")
        );
    }

    #[test]
    fn quiet_hours_hold_an_sms_until_eight_china_time() {
        let at = |h, m| Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).unwrap();
        // 13:59 UTC is 21:59 in China: sent at once.
        assert_eq!(quiet_until(at(13, 59), "case_fixed", "major"), None);
        // 14:00 UTC is 22:00: held until 08:00 the next China day (00:00 UTC).
        let eight = Utc.with_ymd_and_hms(2026, 3, 3, 0, 0, 0).unwrap();
        assert_eq!(quiet_until(at(14, 0), "case_fixed", "major"), Some(eight));
        // 23:30 UTC is 07:30 the next day in China: held until 08:00 that day.
        assert_eq!(quiet_until(at(23, 30), "referral", "major"), Some(eight));
        // 00:00 UTC is 08:00: sent.
        assert_eq!(quiet_until(eight, "referral", "major"), None);
        // Orders and overdue notices of critical hazards go at any hour; others wait.
        assert_eq!(
            quiet_until(at(18, 0), "rectification_order", "critical"),
            None
        );
        assert_eq!(quiet_until(at(18, 0), "order_overdue", "critical"), None);
        assert_eq!(
            quiet_until(at(18, 0), "rectification_order", "major"),
            Some(eight)
        );
        assert_eq!(
            quiet_until(at(18, 0), "case_fixed", "critical"),
            Some(eight)
        );
    }

    #[test]
    fn digests_wait_until_six_but_urgent_messages_do_not() {
        let at = |h| Utc.with_ymd_and_hms(2026, 3, 2, h, 0, 0).unwrap();
        // 01:00 UTC is 09:00 China time: today's digest at 18:00 China (10:00 UTC).
        assert_eq!(next_digest(at(1)), at(10));
        // 10:00 UTC is 18:00: the next one is tomorrow's.
        assert_eq!(next_digest(at(10)), at(10) + TimeDelta::days(1));
        assert!(may_wait_for_digest("case_fixed", Some("critical")));
        assert!(may_wait_for_digest("rectification_order", Some("major")));
        assert!(!may_wait_for_digest(
            "rectification_order",
            Some("critical")
        ));
        assert!(!may_wait_for_digest("order_overdue", None));
        assert!(!may_wait_for_digest("referral", Some("minor")));
        let (subject, body) = digest(&[
            DigestEntry {
                case: 7,
                subject: "整改通知书 / Order",
                link: Some("https://anju.example/cases/7".into()),
            },
            DigestEntry {
                case: 9,
                subject: "已销案 / Closed",
                link: None,
            },
        ]);
        assert!(subject.contains("2 条") && subject.contains("2 messages"));
        assert!(body.find("案件 7").unwrap() < body.find("案件 9").unwrap());
        assert!(body.contains("https://anju.example/cases/7"));
        let a = digest_message_id(5, "email", "li@example.cn", "anju.example");
        assert_eq!(
            a,
            digest_message_id(5, "email", "li@example.cn", "anju.example")
        );
        assert_ne!(
            a,
            digest_message_id(6, "email", "li@example.cn", "anju.example")
        );
    }
}
