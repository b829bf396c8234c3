//! Raw scenario and steps to the model: includes, levels, identities, stream rules.

use super::fields::{build_capture, build_expect, build_send, status_spec};
use super::raw::{RawFragment, RawScenario, RawStep};
use super::{model::*, ScenarioError};
use crate::interp::Vars;
use serde_json::Value;
use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

pub(super) struct Ctx<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
}

impl Ctx<'_> {
    pub(super) fn error(&self, span: Range<usize>, message: impl Into<String>) -> ScenarioError {
        let (line, col) = line_col(self.text, span.start);
        ScenarioError::Invalid {
            path: self.path.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }

    pub(super) fn location(&self, span: &Range<usize>) -> String {
        format!(
            "{}:{}",
            self.path.display(),
            line_col(self.text, span.start).0
        )
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn toml_error(path: &Path, text: &str, err: toml::de::Error) -> ScenarioError {
    let (line, col) = err
        .span()
        .map(|span| line_col(text, span.start))
        .unwrap_or((1, 1));
    ScenarioError::Invalid {
        path: path.to_path_buf(),
        line,
        col,
        message: match err.message().trim() {
            // toml says nothing for some bytes (a bare CR, found by fuzz/scenario_toml).
            "" if text.as_bytes().get(span_start(&err)) == Some(&b'\r') => {
                "a carriage return must be followed by a newline".to_string()
            }
            "" => "invalid TOML here".to_string(),
            message => message.to_string(),
        },
    }
}

fn span_start(err: &toml::de::Error) -> usize {
    err.span().map_or(0, |span| span.start)
}

/// Parses scenario text (the path is used for messages and includes).
pub fn parse_scenario(text: &str, path: &Path, id: String) -> Result<Scenario, ScenarioError> {
    let raw: RawScenario = toml::from_str(text).map_err(|e| toml_error(path, text, e))?;
    let ctx = Ctx { path, text };
    let mut level = None;
    let mut tags = Vec::new();
    for tag in &raw.tags {
        if let Some(l) = Level::parse(tag.get_ref()) {
            if level.replace(l).is_some() {
                return Err(ctx.error(tag.span(), "more than one level tag (MUST/SHOULD/MAY)"));
            }
        }
        tags.push(tag.get_ref().clone());
    }
    let level = level.unwrap_or(Level::Must);
    let profile = match &raw.profile {
        None => Profile::Local,
        Some(p) => match p.get_ref().as_str() {
            "live" => Profile::Live,
            "local" => Profile::Local,
            other => {
                return Err(ctx.error(
                    p.span(),
                    format!("profile must be \"live\" or \"local\", got {other:?}"),
                ))
            }
        },
    };
    let mut vars = table_to_vars(&raw.vars);
    let mut steps = Vec::new();
    for step in raw.steps {
        expand_step(&ctx, step, level, &mut steps, &mut vars, 0)?;
    }
    if steps.is_empty() {
        return Err(ctx.error(0..0, "a scenario needs at least one [[step]]"));
    }
    for (i, step) in steps.iter_mut().enumerate() {
        step.index = i + 1;
    }
    check_streams(&ctx, &steps)?;
    let name = raw.name.unwrap_or_else(|| id.clone());
    Ok(Scenario {
        id,
        name,
        description: raw.description,
        path: path.to_path_buf(),
        spec: raw.spec,
        tags,
        level,
        profile,
        vars,
        needs_vars: raw.needs_vars,
        default_headers: raw.defaults.headers.into_iter().collect(),
        modern: raw.defaults.modern.unwrap_or(false),
        timeout: raw.timeout,
        steps,
    })
}

fn table_to_vars(table: &toml::Table) -> Vars {
    table
        .iter()
        .map(|(k, v)| (k.clone(), toml_to_json(v)))
        .collect()
}

pub(super) fn toml_to_json(value: &toml::Value) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn check_streams(ctx: &Ctx<'_>, steps: &[Step]) -> Result<(), ScenarioError> {
    let mut opened = BTreeSet::new();
    for step in steps {
        let used = match &step.action {
            Action::Request {
                stream: Some(name), ..
            } => {
                opened.insert(name.clone());
                None
            }
            Action::Read { stream } | Action::Close { stream } => Some(stream),
            _ => None,
        };
        if let Some(name) = used {
            if !opened.contains(name) {
                return Err(ScenarioError::Invalid {
                    path: ctx.path.to_path_buf(),
                    line: step
                        .location
                        .rsplit(':')
                        .next()
                        .and_then(|l| l.parse().ok())
                        .unwrap_or(1),
                    col: 1,
                    message: format!(
                        "step {:?} uses stream {name:?} before a step opens it with stream = {name:?}",
                        step.name
                    ),
                });
            }
        }
    }
    Ok(())
}

const MAX_INCLUDE_DEPTH: usize = 4;

/// Removes `.` and `name/..` pairs without touching the file system (for readable locations).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.iter().collect()
}

fn expand_step(
    ctx: &Ctx<'_>,
    step: Spanned<RawStep>,
    default_level: Level,
    out: &mut Vec<Step>,
    vars: &mut Vars,
    depth: usize,
) -> Result<(), ScenarioError> {
    let span = step.span();
    let raw = step.into_inner();
    let Some(include) = &raw.include else {
        out.push(build_step(ctx, span, raw, default_level, out.len() + 1)?);
        return Ok(());
    };
    let only_include = RawStep {
        include: raw.include.clone(),
        ..RawStep::default()
    };
    if format!("{raw:?}") != format!("{only_include:?}") {
        return Err(ctx.error(span, "a step with `include` may not have other keys"));
    }
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(ctx.error(span, "includes nested too deeply"));
    }
    let base = ctx.path.parent().unwrap_or(Path::new("."));
    let include_path = normalize(&base.join(include));
    let text = super::read_bounded(&include_path).map_err(|e| {
        ctx.error(
            span.clone(),
            format!("cannot read include {}: {e}", include_path.display()),
        )
    })?;
    let fragment: RawFragment =
        toml::from_str(&text).map_err(|e| toml_error(&include_path, &text, e))?;
    let inner = Ctx {
        path: &include_path,
        text: &text,
    };
    for (name, value) in table_to_vars(&fragment.vars) {
        vars.entry(name).or_insert(value);
    }
    for step in fragment.steps {
        expand_step(&inner, step, default_level, out, vars, depth + 1)?;
    }
    Ok(())
}

fn parse_duration_check(
    ctx: &Ctx<'_>,
    span: &Range<usize>,
    text: &str,
) -> Result<(), ScenarioError> {
    if !text.contains("${") {
        parse_duration(text).map_err(|e| ctx.error(span.clone(), e))?;
    }
    Ok(())
}

/// Parses `500ms`, `5s`, `2m` or a bare number of seconds (fractions allowed).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {text:?} (use 500ms, 5s or 2m)"))?;
    if !(0.0..=86_400.0).contains(&(value * scale)) {
        return Err(format!("duration {text:?} out of range"));
    }
    Ok(std::time::Duration::from_secs_f64(value * scale))
}

fn build_step(
    ctx: &Ctx<'_>,
    span: Range<usize>,
    raw: RawStep,
    default_level: Level,
    position: usize,
) -> Result<Step, ScenarioError> {
    let err = |message: String| ctx.error(span.clone(), message);
    let identity = match raw.identity.as_deref() {
        None | Some("a") => Identity::A,
        Some("b") => Identity::B,
        Some("none") => Identity::None,
        Some(other) => {
            return Err(err(format!(
                "as must be \"a\", \"b\" or \"none\", got {other:?}"
            )))
        }
    };
    let level = match raw.level.as_deref() {
        None => default_level,
        Some(text) => Level::parse(text)
            .ok_or_else(|| err(format!("level must be MUST, SHOULD or MAY, got {text:?}")))?,
    };
    if let Some(within) = &raw.within {
        parse_duration_check(ctx, &span, within)?;
    }
    let kinds = [
        raw.send.is_some(),
        raw.read.is_some(),
        raw.close.is_some(),
        raw.wait.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err(err(
            "a step needs exactly one of send, read, close, wait or include".to_string(),
        ));
    }
    let concurrency = raw.concurrency.unwrap_or(1);
    let repeat = raw.repeat.unwrap_or(1);
    if concurrency == 0 || repeat == 0 || concurrency > 256 || repeat > 1000 {
        return Err(err(
            "concurrency must be 1..=256 and repeat 1..=1000".to_string()
        ));
    }
    if raw.send.is_none()
        && (raw.stream.is_some()
            || raw.concurrency.is_some()
            || raw.repeat.is_some()
            || raw.until.is_some())
    {
        return Err(err(
            "stream, concurrency, repeat and until only apply to send steps".to_string(),
        ));
    }
    if concurrency > 1 && (raw.stream.is_some() || !raw.capture.is_empty() || raw.repeat.is_some())
    {
        return Err(err(
            "a concurrent step cannot open a stream, capture or repeat".to_string(),
        ));
    }
    let until = match &raw.until {
        Some(until) => Some(status_spec(&until.status).map_err(&err)?),
        None => None,
    };
    let default_name;
    let action = if let Some(send) = raw.send {
        let send = build_send(ctx, &span, send)?;
        default_name = format!(
            "{} {}",
            send.method,
            send.url
                .as_deref()
                .or(send.path.as_deref())
                .unwrap_or("<target>")
        );
        Action::Request {
            send,
            stream: raw.stream,
            concurrency,
            repeat,
            until,
        }
    } else if let Some(stream) = raw.read {
        default_name = format!("read stream {stream}");
        Action::Read { stream }
    } else if let Some(stream) = raw.close {
        default_name = format!("close stream {stream}");
        Action::Close { stream }
    } else {
        let duration = raw.wait.unwrap_or_default();
        parse_duration_check(ctx, &span, &duration)?;
        default_name = format!("wait {duration}");
        Action::Wait { duration }
    };
    let expect = match raw.expect {
        Some(expect) => build_expect(ctx, &span, expect)?,
        None => Expect::default(),
    };
    if matches!(action, Action::Close { .. } | Action::Wait { .. })
        && (raw_has_expect(&expect) || !raw.capture.is_empty())
    {
        return Err(err(
            "close and wait steps take no expect or capture".to_string()
        ));
    }
    if matches!(action, Action::Read { .. })
        && (expect.status.is_some() || !expect.headers.is_empty())
    {
        return Err(err(
            "a read step checks stream data only; put status and headers on the step that opened it"
                .to_string(),
        ));
    }
    let mut captures = Vec::new();
    for (name, capture) in raw.capture {
        captures.push((name, build_capture(ctx, &span, capture)?));
    }
    Ok(Step {
        index: position,
        name: raw.name.unwrap_or(default_name),
        location: ctx.location(&span),
        identity,
        level,
        paced: raw.paced,
        always: raw.always,
        within: raw.within,
        action,
        expect,
        captures,
    })
}

fn raw_has_expect(expect: &Expect) -> bool {
    expect.status.is_some()
        || !expect.headers.is_empty()
        || expect.body.is_some()
        || expect.json.is_some()
        || expect.response.is_some()
        || expect.sse.is_some()
        || !expect.sse_none.is_empty()
        || expect.sse_end.is_some()
        || expect.comment
}
