//! The integrations file: a YAML list of `{provider, alias?, scope?, context}` entries.
//!
//! The file is read through yaml-rust2's event parser into a small tree that keeps the
//! position of every node, so each problem is reported with its line and column, and the
//! whole file is checked before anything is accepted. Anchors and aliases are refused:
//! nothing here needs them, and they are how small YAML files become large ones.

use super::ids::{Alias, ProviderName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::collections::HashSet;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Largest integrations file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 64 * 1024;
/// Deepest nesting of lists and maps accepted (the format itself needs three).
pub const MAX_DEPTH: usize = 8;
/// Most entries in one file.
pub const MAX_ENTRIES: usize = 100;
const MAX_SCOPES: usize = 50;
const MAX_SCOPE_LEN: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Context {
    Bot,
    User,
}

impl Context {
    pub fn as_str(self) -> &'static str {
        match self {
            Context::Bot => "bot",
            Context::User => "user",
        }
    }
}

/// How a user-context sign-in is confirmed as the chat user's own before its token is
/// stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Confirm {
    /// Stored as soon as the callback succeeds (one click), bound to the browser only.
    #[default]
    None,
    /// The callback page shows a one-time code; the token is stored when the bot sends that
    /// code back from the chat (`POST .../users/{user_id}/confirmations`).
    Code,
    /// The browser goes on to the bot's `confirm_url` with an unguessable flow id; the
    /// platform, which knows its signed-in user, confirms it
    /// (`POST .../flows/{flow_id}/confirm`).
    Redirect,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integration {
    pub alias: Alias,
    pub provider: ProviderName,
    pub scope: Vec<String>,
    pub context: Context,
    #[serde(default)]
    pub confirm: Confirm,
    /// Per-connection values of the provider (a Zendesk subdomain), for every connection
    /// of this integration; a link may give them instead.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// Refresh the access token before it expires even when the bot does not ask for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_fresh: bool,
}

/// One problem in the file, at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct YamlIssue {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    line: usize,
    column: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        Pos {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

#[derive(Debug)]
enum Node {
    Scalar(String, Pos),
    Seq(Vec<Node>, Pos),
    Map(Vec<(Node, Node)>, Pos),
}

impl Node {
    fn pos(&self) -> Pos {
        match self {
            Node::Scalar(_, p) | Node::Seq(_, p) | Node::Map(_, p) => *p,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Node::Scalar(..) => "a string",
            Node::Seq(..) => "a list",
            Node::Map(..) => "a mapping",
        }
    }
}

enum Frame {
    Seq(Vec<Node>, Pos),
    Map(Vec<Node>, Pos),
}

/// Builds the tree from parser events, enforcing the depth limit as it goes.
#[derive(Default)]
struct TreeBuilder {
    stack: Vec<Frame>,
    documents: Vec<Node>,
    error: Option<(Pos, String)>,
}

impl TreeBuilder {
    fn fail(&mut self, pos: Pos, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some((pos, message.into()));
        }
    }

    fn push_node(&mut self, node: Node) {
        match self.stack.last_mut() {
            Some(Frame::Seq(items, _)) | Some(Frame::Map(items, _)) => items.push(node),
            None => self.documents.push(node),
        }
    }

    fn open(&mut self, frame: Frame, pos: Pos) {
        if self.stack.len() >= MAX_DEPTH {
            self.fail(pos, format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        self.stack.push(frame);
    }
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let pos = Pos::from(mark);
        match ev {
            Event::Alias(_) => self.fail(pos, "anchors and aliases are not supported"),
            Event::Scalar(value, _, anchor, _) => {
                if anchor != 0 {
                    self.fail(pos, "anchors and aliases are not supported");
                }
                self.push_node(Node::Scalar(value, pos));
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) if anchor != 0 => {
                self.fail(pos, "anchors and aliases are not supported")
            }
            Event::SequenceStart(..) => self.open(Frame::Seq(Vec::new(), pos), pos),
            Event::MappingStart(..) => self.open(Frame::Map(Vec::new(), pos), pos),
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq(items, p)) => Node::Seq(items, p),
                    Some(Frame::Map(items, p)) => {
                        let mut pairs = Vec::with_capacity(items.len() / 2);
                        let mut it = items.into_iter();
                        while let (Some(k), Some(v)) = (it.next(), it.next()) {
                            pairs.push((k, v));
                        }
                        Node::Map(pairs, p)
                    }
                    None => return,
                };
                self.push_node(node);
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// What the parser needs to know about providers: which names exist.
pub trait KnownProviders {
    fn contains(&self, name: &str) -> bool;
    fn names(&self) -> Vec<String>;
}

impl KnownProviders for [String] {
    fn contains(&self, name: &str) -> bool {
        self.iter().any(|n| n == name)
    }
    fn names(&self) -> Vec<String> {
        self.to_vec()
    }
}

/// Parses and checks a whole integrations file. Either every entry is valid and the typed
/// list comes back, or every problem found comes back and nothing is accepted.
pub fn parse_integrations(
    source: &str,
    providers: &(impl KnownProviders + ?Sized),
) -> Result<Vec<Integration>, Vec<YamlIssue>> {
    let entries = entries_of(source)?;
    let mut issues = Vec::new();
    let mut parsed = Vec::new();
    let mut seen_aliases: HashSet<Alias> = HashSet::new();
    for entry in &entries {
        match parse_entry(entry, providers) {
            Ok((integration, alias_pos)) => {
                if !seen_aliases.insert(integration.alias.clone()) {
                    issues.push(issue(
                        alias_pos,
                        format!(
                            "duplicate alias '{}': give one of the entries its own 'alias'",
                            integration.alias
                        ),
                    ));
                }
                parsed.push(integration);
            }
            Err(mut entry_issues) => issues.append(&mut entry_issues),
        }
    }
    if issues.is_empty() {
        Ok(parsed)
    } else {
        Err(issues)
    }
}

/// The file's entries: one YAML document holding a list, within the limits.
fn entries_of(source: &str) -> Result<Vec<Node>, Vec<YamlIssue>> {
    if source.len() > MAX_FILE_BYTES {
        return Err(vec![YamlIssue {
            line: 1,
            column: 1,
            message: format!("the file is larger than {MAX_FILE_BYTES} bytes"),
        }]);
    }
    let mut builder = TreeBuilder::default();
    if let Err(e) = Parser::new_from_str(source).load(&mut builder, true) {
        return Err(vec![issue(Pos::from(*e.marker()), e.info().to_owned())]);
    }
    if let Some((pos, message)) = builder.error {
        return Err(vec![issue(pos, message)]);
    }
    let root = match builder.documents.len() {
        0 => return Ok(Vec::new()),
        1 => builder.documents.remove(0),
        _ => {
            let pos = builder.documents[1].pos();
            return Err(vec![issue(pos, "expected one YAML document".to_owned())]);
        }
    };
    let entries = match root {
        Node::Seq(items, _) => items,
        // An empty file or a lone `~` means "no integrations".
        Node::Scalar(s, _) if s.is_empty() || s == "~" || s == "null" => return Ok(Vec::new()),
        other => {
            return Err(vec![issue(
                other.pos(),
                format!(
                    "expected a list of integrations (entries starting with '- '), found {}",
                    other.kind()
                ),
            )])
        }
    };
    if entries.len() > MAX_ENTRIES {
        return Err(vec![issue(
            entries[MAX_ENTRIES].pos(),
            format!("more than {MAX_ENTRIES} integrations"),
        )]);
    }
    Ok(entries)
}

const FIELDS: [&str; 7] = [
    "provider",
    "alias",
    "scope",
    "context",
    "confirm",
    "params",
    "keep_fresh",
];

fn issue(pos: Pos, message: String) -> YamlIssue {
    YamlIssue {
        line: pos.line,
        column: pos.column,
        message,
    }
}

fn parse_entry(
    entry: &Node,
    providers: &(impl KnownProviders + ?Sized),
) -> Result<(Integration, Pos), Vec<YamlIssue>> {
    let Node::Map(pairs, entry_pos) = entry else {
        return Err(vec![issue(
            entry.pos(),
            format!(
                "expected an integration (provider, alias, scope, context), found {}",
                entry.kind()
            ),
        )]);
    };
    let mut fields = EntryFields::default();
    let mut seen = HashSet::new();
    for (key, value) in pairs {
        let Node::Scalar(name, key_pos) = key else {
            fields
                .issues
                .push(issue(key.pos(), "keys must be plain words".to_owned()));
            continue;
        };
        if !seen.insert(name.as_str()) {
            fields
                .issues
                .push(issue(*key_pos, format!("'{name}' is given twice")));
            continue;
        }
        fields.read(name, *key_pos, value, providers);
    }
    fields.finish(*entry_pos, &seen)
}

/// One entry's fields as they are read, with every problem found on the way.
#[derive(Default)]
struct EntryFields {
    provider: Option<(ProviderName, Pos)>,
    alias: Option<(Alias, Pos)>,
    scope: Vec<String>,
    context: Option<Context>,
    confirm: Option<(Confirm, Pos)>,
    params: Option<(BTreeMap<String, String>, Pos)>,
    keep_fresh: bool,
    issues: Vec<YamlIssue>,
}

fn scalar<'a>(what: &str, value: &'a Node) -> Result<(&'a str, Pos), YamlIssue> {
    match value {
        Node::Scalar(s, p) => Ok((s.as_str(), *p)),
        other => Err(issue(
            other.pos(),
            format!("'{what}' must be a string, found {}", other.kind()),
        )),
    }
}

impl EntryFields {
    fn read(
        &mut self,
        name: &str,
        key_pos: Pos,
        value: &Node,
        providers: &(impl KnownProviders + ?Sized),
    ) {
        let outcome = match name {
            "provider" => {
                scalar(name, value).and_then(|(raw, pos)| match ProviderName::parse(raw) {
                    Ok(p) if providers.contains(p.as_str()) => {
                        self.provider = Some((p, pos));
                        Ok(())
                    }
                    _ => Err(issue(pos, unknown_provider(raw, providers))),
                })
            }
            "alias" => scalar(name, value).and_then(|(raw, pos)| {
                let a = Alias::parse(raw).map_err(|e| issue(pos, e.to_string()))?;
                self.alias = Some((a, pos));
                Ok(())
            }),
            "scope" => parse_scope(value).map(|s| self.scope = s),
            "context" => scalar(name, value).and_then(|(raw, pos)| {
                self.context = Some(match raw {
                    "bot" => Context::Bot,
                    "user" => Context::User,
                    other => {
                        return Err(issue(
                            pos,
                            format!("context must be 'bot' or 'user', not '{other}'"),
                        ))
                    }
                });
                Ok(())
            }),
            "confirm" => scalar(name, value).and_then(|(raw, pos)| {
                let confirm = match raw {
                    "none" => Confirm::None,
                    "code" => Confirm::Code,
                    "redirect" => Confirm::Redirect,
                    other => {
                        return Err(issue(
                            pos,
                            format!("confirm must be 'none', 'code' or 'redirect', not '{other}'"),
                        ))
                    }
                };
                self.confirm = Some((confirm, pos));
                Ok(())
            }),
            "keep_fresh" => scalar(name, value).and_then(|(raw, pos)| {
                self.keep_fresh = match raw {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(issue(
                            pos,
                            format!("keep_fresh must be true or false, not '{other}'"),
                        ))
                    }
                };
                Ok(())
            }),
            "params" => match value {
                Node::Map(pairs, pos) => {
                    let mut params = BTreeMap::new();
                    let mut bad = None;
                    for (k, v) in pairs {
                        match (k, v) {
                            (Node::Scalar(k, _), Node::Scalar(v, _)) => {
                                params.insert(k.clone(), v.clone());
                            }
                            (_, other) => {
                                bad = Some(issue(
                                    other.pos(),
                                    "each of 'params' must be a name with a string value".into(),
                                ));
                            }
                        }
                    }
                    self.params = Some((params, *pos));
                    bad.map_or(Ok(()), Err)
                }
                other => Err(issue(
                    other.pos(),
                    format!("'params' must be a mapping, found {}", other.kind()),
                )),
            },
            other => {
                let hint = closest(other, FIELDS.iter().copied())
                    .map(|s| format!(" (did you mean '{s}'?)"))
                    .unwrap_or_default();
                Err(issue(
                    key_pos,
                    format!(
                        "unknown key '{other}'{hint}; allowed: provider, alias, scope, context, confirm, params, keep_fresh"
                    ),
                ))
            }
        };
        if let Err(e) = outcome {
            self.issues.push(e);
        }
    }

    fn finish(
        mut self,
        entry_pos: Pos,
        seen: &HashSet<&str>,
    ) -> Result<(Integration, Pos), Vec<YamlIssue>> {
        if !seen.contains("provider") {
            self.issues
                .push(issue(entry_pos, "'provider' is required".to_owned()));
        }
        if !seen.contains("context") {
            self.issues.push(issue(
                entry_pos,
                "'context' is required: 'bot' or 'user'".to_owned(),
            ));
        }
        if let (Some((confirm, pos)), Some(Context::Bot)) = (self.confirm, self.context) {
            if confirm != Confirm::None {
                self.issues.push(issue(
                    pos,
                    "confirm: code and confirm: redirect apply to user-context integrations; \
                     the bot's builder connects bot-context ones on the connect page"
                        .to_owned(),
                ));
            }
        }
        if let (Some((provider, _)), Some((params, pos))) = (&self.provider, &self.params) {
            if let Err(why) = super::catalog::check_connection_params(provider.as_str(), params) {
                self.issues.push(issue(*pos, why));
            }
        }
        match (self.provider, self.context) {
            (Some((provider, provider_pos)), Some(context)) if self.issues.is_empty() => {
                let (alias, alias_pos) = self
                    .alias
                    .unwrap_or_else(|| (Alias::from(&provider), provider_pos));
                Ok((
                    Integration {
                        alias,
                        provider,
                        scope: self.scope,
                        context,
                        confirm: self.confirm.map_or(Confirm::None, |(c, _)| c),
                        params: self.params.map(|(p, _)| p).unwrap_or_default(),
                        keep_fresh: self.keep_fresh,
                    },
                    alias_pos,
                ))
            }
            _ => Err(self.issues),
        }
    }
}

fn unknown_provider(raw: &str, providers: &(impl KnownProviders + ?Sized)) -> String {
    let names = providers.names();
    match closest(raw, names.iter().map(String::as_str)) {
        Some(best) => format!("unknown provider '{raw}' (did you mean '{best}'?)"),
        None => format!(
            "unknown provider '{raw}'; known providers: {}",
            names.join(", ")
        ),
    }
}

/// Scopes as in the seed, `email,publish_actions`: commas and/or spaces, or a YAML list.
fn parse_scope(value: &Node) -> Result<Vec<String>, YamlIssue> {
    let issue = |pos: Pos, message: String| YamlIssue {
        line: pos.line,
        column: pos.column,
        message,
    };
    let mut scopes: Vec<(String, Pos)> = Vec::new();
    match value {
        Node::Scalar(s, pos) => scopes.extend(split_scopes(s).map(|s| (s.to_owned(), *pos))),
        Node::Seq(items, _) => {
            for item in items {
                match item {
                    Node::Scalar(s, pos) => {
                        scopes.extend(split_scopes(s).map(|s| (s.to_owned(), *pos)))
                    }
                    other => {
                        return Err(issue(
                            other.pos(),
                            format!("each scope must be a string, found {}", other.kind()),
                        ))
                    }
                }
            }
        }
        Node::Map(_, pos) => {
            return Err(issue(
                *pos,
                "'scope' must be a string like 'email,profile' or a list".to_owned(),
            ))
        }
    }
    if scopes.len() > MAX_SCOPES {
        return Err(issue(value.pos(), format!("more than {MAX_SCOPES} scopes")));
    }
    let mut out: Vec<String> = Vec::with_capacity(scopes.len());
    for (scope, pos) in scopes {
        // RFC 6749 section 3.3: a scope token is printable ASCII without space, '"' or '\'.
        let valid = scope.len() <= MAX_SCOPE_LEN
            && scope
                .bytes()
                .all(|c| (0x21..=0x7e).contains(&c) && c != b'"' && c != b'\\');
        if !valid {
            return Err(issue(pos, format!("'{scope}' is not a valid scope")));
        }
        if !out.contains(&scope) {
            out.push(scope);
        }
    }
    Ok(out)
}

fn split_scopes(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

/// The candidate nearest to `input` by edit distance, when it is near enough to be a typo.
pub fn closest<'a>(input: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (input.chars().count() / 3).max(1) + 1;
    candidates
        .map(|c| (levenshtein(input, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        ["google", "facebook", "github", "microsoft", "slack"]
            .map(String::from)
            .to_vec()
    }

    fn parse(src: &str) -> Result<Vec<Integration>, Vec<YamlIssue>> {
        parse_integrations(src, known().as_slice())
    }

    #[test]
    fn parses_the_seed_example() {
        let src = "- provider: google\n  alias: google\n  scope: email\n  context: user\n\
                   - provider: facebook\n  context: user\n  scope: email,publish_actions\n";
        let list = parse(src).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].alias.as_str(), "google");
        assert_eq!(list[0].scope, vec!["email"]);
        assert_eq!(list[1].alias.as_str(), "facebook");
        assert_eq!(list[1].scope, vec!["email", "publish_actions"]);
        assert_eq!(list[1].context, Context::User);
    }

    #[test]
    fn scopes_accept_commas_spaces_and_lists() {
        let src = "- provider: google\n  context: bot\n  scope: 'openid, email  profile'\n\
                   - provider: github\n  context: user\n  scope: [repo, 'read:org']\n";
        let list = parse(src).unwrap();
        assert_eq!(list[0].scope, vec!["openid", "email", "profile"]);
        assert_eq!(list[1].scope, vec!["repo", "read:org"]);
        assert_eq!(list[0].context, Context::Bot);
    }

    #[test]
    fn empty_file_is_no_integrations() {
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("[]").unwrap(), vec![]);
    }

    #[test]
    fn unknown_provider_suggests_the_nearest() {
        let issues = parse("- provider: gogle\n  context: user\n").unwrap_err();
        assert_eq!(issues.len(), 1);
        assert_eq!((issues[0].line, issues[0].column), (1, 13));
        assert!(
            issues[0].message.contains("did you mean 'google'"),
            "{}",
            issues[0].message
        );
    }

    #[test]
    fn every_problem_has_its_position() {
        let src = "- provider: google\n  context: user\n  scopes: email\n\
                   - provider: google\n  context: maybe\n\
                   - alias: x\n  context: bot\n";
        let issues = parse(src).unwrap_err();
        let at: Vec<(usize, usize)> = issues.iter().map(|i| (i.line, i.column)).collect();
        assert!(at.contains(&(3, 3)), "{issues:?}");
        assert!(issues[0].message.contains("did you mean 'scope'"));
        assert!(at.contains(&(5, 12)), "{issues:?}");
        assert!(
            issues
                .iter()
                .any(|i| i.line == 6 && i.message.contains("'provider' is required")),
            "{issues:?}"
        );
    }

    #[test]
    fn duplicate_aliases_are_refused() {
        let src = "- provider: google\n  context: user\n- provider: google\n  context: bot\n";
        let issues = parse(src).unwrap_err();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].line, 3);
        assert!(issues[0].message.contains("duplicate alias 'google'"));
        let ok = "- provider: google\n  context: user\n- provider: google\n  alias: google_bot\n  context: bot\n";
        assert_eq!(parse(ok).unwrap().len(), 2);
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let issues = parse("- provider: google\n  context: [user\n").unwrap_err();
        assert_eq!(issues.len(), 1);
        assert!(issues[0].line >= 2, "{issues:?}");
    }

    #[test]
    fn bad_shapes_and_values() {
        assert!(parse("provider: google\ncontext: user\n").unwrap_err()[0]
            .message
            .contains("expected a list"));
        assert!(parse("- provider: google\n  alias: Bad-Alias\n  context: user\n").is_err());
        assert!(parse("- provider: google\n  context: user\n  scope: {a: b}\n").is_err());
        assert!(parse("- provider: google\n  context: user\n  scope: 'a\"b'\n").is_err());
        assert!(parse("- provider: google\n  provider: github\n  context: user\n").is_err());
    }

    #[test]
    fn anchors_depth_and_size_are_bounded() {
        let aliases = "- &a {provider: google, context: user}\n- *a\n";
        assert!(parse(aliases).unwrap_err()[0].message.contains("anchors"));
        let deep = format!("{}1{}", "[".repeat(20), "]".repeat(20));
        assert!(parse(&deep).unwrap_err()[0].message.contains("nesting"));
        let big = format!("# {}\n[]", "x".repeat(MAX_FILE_BYTES));
        assert!(parse(&big).unwrap_err()[0].message.contains("larger"));
        let many = "- {provider: google, context: user}\n".repeat(MAX_ENTRIES + 1);
        assert!(parse(&many).unwrap_err()[0].message.contains("more than"));
    }

    #[test]
    fn connection_values_are_checked_against_the_catalog() {
        let known = vec!["zendesk".to_owned()];
        let ok = parse_integrations(
            "- provider: zendesk\n  context: bot\n  params:\n    subdomain: acme\n",
            known.as_slice(),
        )
        .unwrap();
        assert_eq!(ok[0].params["subdomain"], "acme");
        for bad in [
            "    subdomain: ../evil\n",
            "    shop: acme\n",
            "    subdomain: [a]\n",
        ] {
            let src = format!("- provider: zendesk\n  context: bot\n  params:\n{bad}");
            let issues = parse_integrations(&src, known.as_slice()).unwrap_err();
            assert!(issues[0].message.contains("params"), "{bad}: {issues:?}");
        }
    }

    #[test]
    fn closest_only_for_near_names() {
        assert_eq!(
            closest("gthub", ["github", "google"].into_iter()),
            Some("github")
        );
        assert_eq!(closest("dropbox", ["github", "google"].into_iter()), None);
    }
}
