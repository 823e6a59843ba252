//! Where a message's resource ids and references lie in its text, for receiver-assigned
//! ids ([`super::bundle_ids`]): read from the tree that validation parsed, or, when a tree
//! cannot say, by a scan of the text that follows the strict parser's grammar.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use super::tree::Json;

/// What one scan of the text records: where each entry's resource starts, its type and
/// where its `id` value lies, each entry's `fullUrl`, and every `reference` string value
/// with its decoded text. Entries are by index, the resources in order.
///
/// Read from the tree validation built ([`Spans::from_tree`]) when it can say, which saves a
/// pass over the text; else by a scan of the text ([`Spans::scan`]). Both record the same.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Spans {
    pub(super) resources: BTreeMap<usize, ResourcePlace>,
    pub(super) full_urls: HashMap<usize, String>,
    pub(super) references: Vec<(usize, usize, String)>,
}

#[derive(Debug, PartialEq)]
pub(super) struct ResourcePlace {
    /// Just after the resource's `{`.
    pub(super) open: usize,
    /// Whether the object has no member.
    pub(super) empty: bool,
    /// The `id` member's value, quotes included, when it is a string.
    pub(super) id: Option<(usize, usize)>,
    /// That id's text.
    pub(super) id_text: Option<String>,
    /// `resourceType`, when a string.
    pub(super) resource_type: Option<String>,
}

/// What the value being scanned is, for what is recorded of it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Root,
    Entries,
    Entry(usize),
    FullUrl(usize),
    Resource(usize),
    ResourceId(usize),
    ResourceType(usize),
    Other,
}

impl Spans {
    /// What [`Spans::scan`] records, read from `tree`, which was parsed from `text`: a
    /// string borrowed from the text is where it lies in it. `None` where a tree cannot
    /// say: a string with escapes (its text was decoded into a copy, so where it lies is not
    /// known), or a resource with no member (nothing marks where its `{` is).
    pub(crate) fn from_tree(text: &str, tree: &Json<'_>) -> Option<Self> {
        let mut spans = Self::default();
        spans.walk(text, tree, Place::Root)?;
        Some(spans)
    }

    fn walk(&mut self, text: &str, value: &Json<'_>, place: Place) -> Option<()> {
        match value {
            Json::Object(members) => {
                if let Place::Resource(i) = place {
                    let (first, _) = members.first()?;
                    let (quote, _) = span_in(text, first)?;
                    // Only JSON whitespace lies between the `{` and the first member's name.
                    let before = text[..quote].trim_end_matches([' ', '\t', '\n', '\r']);
                    if !before.ends_with('{') {
                        return None;
                    }
                    let place = ResourcePlace {
                        open: before.len(),
                        empty: false,
                        id: None,
                        id_text: None,
                        resource_type: None,
                    };
                    self.resources.insert(i, place);
                }
                for (name, member) in members {
                    let inner = inner_place(place, name);
                    match (inner, member) {
                        (Place::FullUrl(i), Json::String(url)) => {
                            self.full_urls.insert(i, url.to_string());
                        }
                        (Place::ResourceId(i), Json::String(id)) => {
                            let span = span_in(text, id)?;
                            if let Some(r) = self.resources.get_mut(&i) {
                                r.id = Some(span);
                                r.id_text = Some(id.to_string());
                            }
                        }
                        (Place::ResourceType(i), Json::String(ty)) => {
                            if let Some(r) = self.resources.get_mut(&i) {
                                r.resource_type = Some(ty.to_string());
                            }
                        }
                        (_, Json::String(reference)) if name == "reference" => {
                            let (start, end) = span_in(text, reference)?;
                            self.references.push((start, end, reference.to_string()));
                        }
                        _ => self.walk(text, member, inner)?,
                    }
                }
            }
            Json::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    let inner = if place == Place::Entries {
                        Place::Entry(index)
                    } else {
                        Place::Other
                    };
                    self.walk(text, item, inner)?;
                }
            }
            _ => {}
        }
        Some(())
    }

    /// Scans `text`, which is well-formed JSON; `None` if it turns out not to be.
    pub(super) fn scan(text: &str) -> Option<Self> {
        let mut scanner = Scanner {
            bytes: text.as_bytes(),
            text,
            pos: 0,
            spans: Self::default(),
        };
        scanner.value(Place::Root, None, 0)?;
        Some(scanner.spans)
    }
}

/// The place of the member `name` of an object at `place`.
fn inner_place(place: Place, name: &str) -> Place {
    match (place, name) {
        (Place::Root, "entry") => Place::Entries,
        (Place::Entry(i), "resource") => Place::Resource(i),
        (Place::Entry(i), "fullUrl") => Place::FullUrl(i),
        (Place::Resource(i), "id") => Place::ResourceId(i),
        (Place::Resource(i), "resourceType") => Place::ResourceType(i),
        _ => Place::Other,
    }
}

/// Where the string `value` of a tree parsed from `text` lies in it, quotes included:
/// `None` unless it is a slice of `text` (a string with escapes is a decoded copy, which
/// lies elsewhere).
fn span_in(text: &str, value: &str) -> Option<(usize, usize)> {
    let start = (value.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    let end = start.checked_add(value.len())?;
    let bytes = text.as_bytes();
    let quoted = start >= 1 && bytes.get(start - 1) == Some(&b'"') && bytes.get(end) == Some(&b'"');
    quoted.then(|| (start - 1, end + 1))
}

struct Scanner<'t> {
    bytes: &'t [u8],
    text: &'t str,
    pos: usize,
    spans: Spans,
}

/// Deeper than the strict parse allows: a text this deep was not checked.
const MAX_DEPTH: usize = 256;

impl<'t> Scanner<'t> {
    fn skip_space(&mut self) {
        // Indentation comes in runs of spaces (more than half of the NHS examples' bytes):
        // eight at a time where it can, else one by one.
        const SPACES: &[u8; 8] = b"        ";
        loop {
            if self.bytes.get(self.pos..self.pos + 8) == Some(SPACES) {
                self.pos += 8;
            } else if self.bytes.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
                self.pos += 1;
            } else {
                return;
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.bytes.get(self.pos).copied()
    }

    /// A string at `pos`: its span, quotes included. Its text is decoded by [`decoded`],
    /// only where it is read.
    fn string(&mut self) -> Option<(usize, usize)> {
        let start = self.pos;
        if self.bytes.get(start) != Some(&b'"') {
            return None;
        }
        let mut i = start + 1;
        loop {
            i += memchr::memchr2(b'"', b'\\', self.bytes.get(i..)?)?;
            if self.bytes[i] == b'"' {
                break;
            }
            i += 2;
        }
        let end = i + 1;
        self.pos = end;
        Some((start, end))
    }

    /// The text of the string at `start..end` (quotes included), borrowed when it has no
    /// escapes.
    fn decoded(&self, start: usize, end: usize) -> Option<Cow<'t, str>> {
        let raw = self.text.get(start..end)?;
        if raw.contains('\\') {
            serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
        } else {
            raw.get(1..raw.len() - 1).map(Cow::Borrowed)
        }
    }

    fn value(&mut self, place: Place, member: Option<&str>, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'{' => self.object(place, depth),
            b'[' => self.array(place, depth),
            b'"' => {
                let (start, end) = self.string()?;
                match place {
                    Place::FullUrl(i) => {
                        let text = self.decoded(start, end)?.into_owned();
                        self.spans.full_urls.insert(i, text);
                    }
                    Place::ResourceId(i) => {
                        let text = self.decoded(start, end)?.into_owned();
                        if let Some(r) = self.spans.resources.get_mut(&i) {
                            r.id = Some((start, end));
                            r.id_text = Some(text);
                        }
                    }
                    Place::ResourceType(i) => {
                        let text = self.decoded(start, end)?.into_owned();
                        if let Some(r) = self.spans.resources.get_mut(&i) {
                            r.resource_type = Some(text);
                        }
                    }
                    _ if member == Some("reference") => {
                        let text = self.decoded(start, end)?.into_owned();
                        self.spans.references.push((start, end, text));
                    }
                    _ => {}
                }
                Some(())
            }
            _ => {
                while self
                    .bytes
                    .get(self.pos)
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    self.pos += 1;
                }
                Some(())
            }
        }
    }

    fn object(&mut self, place: Place, depth: usize) -> Option<()> {
        self.pos += 1;
        let open = self.pos;
        let empty = self.peek()? == b'}';
        if let Place::Resource(i) = place {
            self.spans.resources.insert(
                i,
                ResourcePlace {
                    open,
                    empty,
                    id: None,
                    id_text: None,
                    resource_type: None,
                },
            );
        }
        if empty {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.skip_space();
            let (start, end) = self.string()?;
            let name = self.decoded(start, end)?;
            if self.peek()? != b':' {
                return None;
            }
            self.pos += 1;
            self.value(inner_place(place, &name), Some(&name), depth + 1)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, place: Place, depth: usize) -> Option<()> {
        self.pos += 1;
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(());
        }
        let mut index = 0;
        loop {
            let inner = if place == Place::Entries {
                Place::Entry(index)
            } else {
                Place::Other
            };
            self.value(inner, None, depth + 1)?;
            index += 1;
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn skips_runs_of_whitespace_of_any_length_and_kind() {
        let pad = |n: usize| " ".repeat(n);
        let text = format!(
            "{{{}\"entry\"{}:\n\t[{}{{\r\n{}\"resource\"{}:{{ \"id\"\t\n{}:\"a\",{}\"resourceType\":\"Patient\"}}}}{}]}}",
            pad(8),
            pad(9),
            pad(16),
            pad(17),
            pad(7),
            pad(24),
            pad(1),
            pad(15)
        );
        let spans = Spans::scan(&text).unwrap();
        let place = &spans.resources[&0];
        let (start, end) = place.id.unwrap();
        assert_eq!(&text[start..end], "\"a\"");
        assert_eq!(place.resource_type.as_deref(), Some("Patient"));
        assert!(serde_json::from_str::<Value>(&text).is_ok());
    }

    #[test]
    fn scans_escapes_and_nesting_like_the_strict_parser() {
        let text = r#"{"entry":[{"resource":{"a":"x\"y","reference":"q","id":"i\u0031","n":[1,{"reference":"Patient\/1","id":"inner","resourceType":"Inner"}],"resourceType":"Pati\u0065nt"},"fullUrl":"urn:uuid:\u0061"},{"fullUrl":"urn:uuid:b","resource":[]}],"reference":true}"#;
        let spans = Spans::scan(text).unwrap();
        let place = &spans.resources[&0];
        let (start, end) = place.id.unwrap();
        assert_eq!(&text[start..end], r#""i\u0031""#);
        assert_eq!(place.id_text.as_deref(), Some("i1"));
        assert_eq!(place.resource_type.as_deref(), Some("Patient"));
        assert_eq!(
            spans.resources.len(),
            1,
            "a resource that is not an object has no place"
        );
        assert_eq!(spans.full_urls[&0], "urn:uuid:a");
        assert_eq!(spans.full_urls[&1], "urn:uuid:b");
        let refs: Vec<&str> = spans.references.iter().map(|(_, _, r)| r.as_str()).collect();
        assert_eq!(refs, ["q", "Patient/1"]);
        assert!(Spans::scan("{\"a\":").is_none());
        assert_eq!(
            Spans::from_tree(text, &crate::fhir::json::parse_tree(text).unwrap()),
            None,
            "a tree cannot say where strings with escapes lie"
        );
    }
}
