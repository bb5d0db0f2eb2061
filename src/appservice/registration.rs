//! An appservice registration file, checked as Synapse's `_load_appservice` checks
//! it, and a little stricter: duplicate keys refused (PyYAML keeps the last), a URL
//! that is http(s) or an explicit null, an id usable as a file name, and every
//! namespace regex compiled (`python_re`). Pure: text in, a registration or a
//! located error out. Errors never quote a token.

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

/// A position in the registration file (line 1-based, column 1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// A refusal, at a position in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub pos: Pos,
    pub msg: String,
}

/// What masctl needs of a registration: the values cross-checked between files and
/// the flags the README's encrypted-bridge notes are about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub id: (String, Pos),
    pub url: Option<String>,
    pub as_token: (String, Pos),
    pub hs_token: (String, Pos),
    pub sender_localpart: (String, Pos),
    pub msc4190: Option<bool>,
    pub msc3202: Option<bool>,
}

fn pos(n: &MarkedYaml) -> Pos {
    Pos { line: n.span.start.line(), col: n.span.start.col() + 1 }
}

fn refuse(at: Pos, msg: impl Into<String>) -> Refusal {
    Refusal { pos: at, msg: msg.into() }
}

type Map<'a> = saphyr::AnnotatedMapping<'a, MarkedYaml<'a>>;

fn get<'a, 'b>(m: &'b Map<'a>, key: &str) -> Option<(&'b MarkedYaml<'a>, &'b MarkedYaml<'a>)> {
    m.iter().find(|(k, _)| k.data.as_str() == Some(key))
}

fn string(m: &Map<'_>, top: Pos, key: &str) -> Result<(String, Pos), Refusal> {
    match get(m, key) {
        Some((_, v)) => match v.data.as_str() {
            Some(s) => Ok((s.to_string(), pos(v))),
            None => Err(refuse(pos(v), format!("{key} must be a string"))),
        },
        None => Err(refuse(top, format!("required string field {key:?} is missing"))),
    }
}

fn opt_bool(m: &Map<'_>, key: &str) -> Result<Option<bool>, Refusal> {
    match get(m, key) {
        None => Ok(None),
        Some((_, v)) => match v.data {
            YamlData::Value(Scalar::Boolean(b)) => Ok(Some(b)),
            _ => Err(refuse(pos(v), format!("{key} must be true or false"))),
        },
    }
}

pub fn parse(text: &str) -> Result<Registration, Refusal> {
    let docs = MarkedYaml::load_from_str(text).map_err(|e| {
        let m = e.marker();
        refuse(Pos { line: m.line(), col: m.col() + 1 }, format!("not valid YAML: {}", e.info()))
    })?;
    let Some(doc) = docs.first() else { return Err(refuse(Pos { line: 1, col: 1 }, "the file is empty")) };
    let top = pos(doc);
    let Some(m) = doc.data.as_mapping() else { return Err(refuse(top, "a registration must be a mapping")) };
    let id = string(m, top, "id")?;
    check_id(&id)?;
    let as_token = string(m, top, "as_token")?;
    let hs_token = string(m, top, "hs_token")?;
    for (name, t) in [("as_token", &as_token), ("hs_token", &hs_token)] {
        if t.0.is_empty() || t.0.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(refuse(t.1, format!("{name} must be non-empty, without spaces or control characters")));
        }
    }
    let sender_localpart = string(m, top, "sender_localpart")?;
    check_localpart(&sender_localpart)?;
    let url = url(m, top)?;
    namespaces(m, top)?;
    protocols(m)?;
    Ok(Registration {
        id,
        url,
        as_token,
        hs_token,
        sender_localpart,
        msc4190: opt_bool(m, "io.element.msc4190")?,
        msc3202: opt_bool(m, "org.matrix.msc3202")?,
    })
}

fn check_id((id, at): &(String, Pos)) -> Result<(), Refusal> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !id.starts_with('.');
    if ok {
        return Ok(());
    }
    Err(refuse(
        *at,
        format!("id {id:?}: masctl needs 1-64 of A-Z a-z 0-9 . _ - (not starting with .), for a file name"),
    ))
}

/// Synapse refuses a localpart `urllib.parse.quote` would change; masctl also
/// keeps to the Matrix user-ID grammar (lower case), which Synapse registers.
fn check_localpart((lp, at): &(String, Pos)) -> Result<(), Refusal> {
    let ok = !lp.is_empty() && lp.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c));
    if ok {
        return Ok(());
    }
    Err(refuse(*at, format!("sender_localpart {lp:?} must be lower-case letters, digits, . _ - /")))
}

fn url(m: &Map<'_>, top: Pos) -> Result<Option<String>, Refusal> {
    let Some((_, v)) = get(m, "url") else {
        return Err(refuse(
            top,
            "url is missing: give the bridge's http(s) URL, or an explicit `url: null` (no pushes)",
        ));
    };
    if v.data.is_null() {
        return Ok(None);
    }
    let Some(u) = v.data.as_str() else { return Err(refuse(pos(v), "url must be a string or null")) };
    let rest = u.strip_prefix("http://").or_else(|| u.strip_prefix("https://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    match host {
        Some(h) if !h.is_empty() && !h.contains('@') && !h.chars().any(char::is_whitespace) => Ok(Some(u.to_string())),
        _ => Err(refuse(pos(v), format!("url {u:?} is not an http:// or https:// URL with a host"))),
    }
}

fn namespaces(m: &Map<'_>, top: Pos) -> Result<(), Refusal> {
    let Some((_, ns)) = get(m, "namespaces") else { return Err(refuse(top, "namespaces is missing (a mapping)")) };
    let Some(ns) = ns.data.as_mapping() else { return Err(refuse(pos(ns), "namespaces must be a mapping")) };
    for kind in ["users", "aliases", "rooms"] {
        let Some((_, list)) = get(ns, kind) else { continue };
        if list.data.is_null() {
            return Err(refuse(pos(list), format!("namespaces.{kind} must be a list (Synapse cannot iterate null)")));
        }
        let Some(items) = list.data.as_sequence() else {
            return Err(refuse(pos(list), format!("namespaces.{kind} must be a list")));
        };
        for item in items {
            namespace_entry(kind, item)?;
        }
    }
    Ok(())
}

fn namespace_entry(kind: &str, item: &MarkedYaml) -> Result<(), Refusal> {
    let at = pos(item);
    let Some(e) = item.data.as_mapping() else {
        return Err(refuse(at, format!("namespaces.{kind}: each entry must be a mapping with regex and exclusive")));
    };
    match get(e, "exclusive") {
        Some((_, v)) if matches!(v.data, YamlData::Value(Scalar::Boolean(_))) => {}
        Some((_, v)) => return Err(refuse(pos(v), format!("namespaces.{kind}: exclusive must be true or false"))),
        None => return Err(refuse(at, format!("namespaces.{kind}: exclusive is missing (true or false)"))),
    }
    let Some((_, r)) = get(e, "regex") else {
        return Err(refuse(at, format!("namespaces.{kind}: regex is missing")));
    };
    let Some(re) = r.data.as_str() else {
        return Err(refuse(pos(r), format!("namespaces.{kind}: regex must be a string")));
    };
    super::python_re::check(re).map_err(|why| refuse(pos(r), format!("namespaces.{kind}: regex {re:?} {why}")))
}

fn protocols(m: &Map<'_>) -> Result<(), Refusal> {
    let Some((_, p)) = get(m, "protocols") else { return Ok(()) };
    if p.data.is_null() {
        return Ok(());
    }
    match p.data.as_sequence() {
        Some(items) if items.iter().all(|i| i.data.as_str().is_some()) => Ok(()),
        _ => Err(refuse(pos(p), "protocols must be a list of strings")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r"id: telegram
url: http://bridge:29317
as_token: AAAA
hs_token: HHHH
sender_localpart: telegrambot
namespaces:
  users:
    - exclusive: true
      regex: '@telegram_.*:example\.org$'
  aliases: []
rate_limited: false
io.element.msc4190: true
";

    #[test]
    fn a_good_registration() {
        let r = parse(GOOD).unwrap();
        assert_eq!(r.id.0, "telegram");
        assert_eq!(r.url.as_deref(), Some("http://bridge:29317"));
        assert_eq!(r.as_token, ("AAAA".to_string(), Pos { line: 3, col: 11 }));
        assert_eq!(r.msc4190, Some(true));
        let null_url = GOOD.replace("url: http://bridge:29317", "url: null");
        assert_eq!(parse(&null_url).unwrap().url, None);
        assert_eq!(parse(&null_url.replace("url: null", "url: ~")).unwrap().url, None);
    }

    #[test]
    fn refusals_are_located() {
        let cases: [(String, (usize, usize), &str); 14] = [
            (GOOD.replace("url: http://bridge:29317\n", ""), (1, 1), "url is missing"),
            (GOOD.replace("http://bridge:29317", "ftp://bridge"), (2, 6), "not an http"),
            (GOOD.replace("http://bridge:29317", "bridge:29317"), (2, 6), "not an http"),
            (GOOD.replace("as_token: AAAA\n", ""), (1, 1), "\"as_token\" is missing"),
            (GOOD.replace("hs_token: HHHH", "hs_token: 12"), (4, 11), "hs_token must be a string"),
            (GOOD.replace("'@telegram_.*", "'@telegram_(.*"), (9, 14), "does not compile"),
            (GOOD.replace("'@telegram_.*", "'@(?=x)"), (9, 14), "lookahead"),
            (GOOD.replace("exclusive: true", "exclusive: yes"), (8, 18), "exclusive must be true or false"),
            (GOOD.replace("id: telegram", "id: tele|gram"), (1, 5), "file name"),
            (GOOD.replace("telegrambot", "Telegram Bot"), (5, 19), "sender_localpart"),
            (GOOD.replace("rate_limited: false", "id: again"), (11, 1), "duplicated key"),
            (GOOD.replace("  aliases: []", "  aliases:"), (10, 10), "must be a list"),
            (GOOD.replace("io.element.msc4190: true", "io.element.msc4190: 1"), (12, 21), "true or false"),
            ("- a\n- b\n".to_string(), (1, 1), "must be a mapping"),
        ];
        for (text, (line, col), want) in cases {
            let e = parse(&text).expect_err(want);
            assert!(e.msg.contains(want), "{want}: {e:?}");
            assert_eq!((e.pos.line, e.pos.col), (line, col), "{want}: {e:?}");
            assert!(!e.msg.contains("AAAA") && !e.msg.contains("HHHH"), "no token in {e:?}");
        }
    }
}
