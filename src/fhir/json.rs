//! Strict JSON for request bodies: one pass over the text that refuses a member name repeated
//! within an object, at any depth, comparing names after unescaping (`"type"` and
//! `"\u0074ype"` are the same name). JSON itself leaves repeated names undefined, and readers
//! differ on which one wins: a message checked on one value and read by a consumer on the
//! other would not be the message that was validated.
//!
//! The same pass builds either a [`Value`] ([`parse_value`], for the bodies handlers take
//! as such) or, for a `$process-message` bundle, the [`Json`] tree borrowed from the text
//! ([`parse_tree`]) that the message's fields and rules are then read from: one pass over
//! the text for both the check and the tree. Names are compared as they are read: linearly
//! for the few members FHIR objects have, by sorting for larger objects, so that neither
//! memory nor time grows faster than the body.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::error::{IssueType, RecError};
use super::tree::Json;

/// With `arbitrary_precision`, serde_json hands a number to a visitor as a one-member map under
/// this name (its `Value` recognises it the same way).
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Members compared one by one as they are read; past this many, an object's names are
/// checked all at once when it ends.
const LINEAR_MEMBERS: usize = 32;

/// Parses a request body into a [`Value`] (numbers kept as written, members in order),
/// refusing repeated member names: 400 `structure`, naming the member and where it is.
pub(crate) fn parse_value(text: &str) -> Result<Value, RecError> {
    parse(text, |de, scope| ValueSeed(scope).deserialize(de))
}

/// Parses a request body into a [`Json`] tree borrowed from it (strings without escapes are
/// slices of `text`, numbers kept as written, members in order), refusing repeated member
/// names as [`parse_value`] does.
pub(crate) fn parse_tree(text: &str) -> Result<Json<'_>, RecError> {
    parse(text, |de, scope| TreeSeed(scope).deserialize(de))
}

/// Runs `read` over `text` with the document's root [`Scope`], then requires the end of the
/// text. Errors become the 400 `structure` a sender can act on.
fn parse<'de, T>(
    text: &'de str,
    read: impl FnOnce(
        &mut serde_json::Deserializer<serde_json::de::StrRead<'de>>,
        Scope<'_, 'de>,
    ) -> serde_json::Result<T>,
) -> Result<T, RecError> {
    let doc = Doc::default();
    let mut de = serde_json::Deserializer::from_str(text);
    let result = read(
        &mut de,
        Scope {
            doc: &doc,
            path: &Path::Root,
        },
    )
    .and_then(|value| de.end().map(|()| value));
    result.map_err(|e| match doc.repeated.into_inner() {
        Some(repeated) => RecError::bad_request(
            IssueType::Structure,
            format!(
                "The request body repeats the member name {repeated} (line {}, column {}): a name may appear only once in an object",
                e.line(),
                e.column()
            ),
        ),
        None => RecError::bad_request(
            IssueType::Structure,
            format!(
                "The request body is not well-formed JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        ),
    })
}

/// What one parse shares across its nesting: the member names of the objects being read
/// (one stack, each object its own tail) and the repeated name, once found.
#[derive(Default)]
struct Doc<'de> {
    names: RefCell<Vec<Cow<'de, str>>>,
    repeated: RefCell<Option<String>>,
}

/// Where a value sits in the document, for diagnostics: `$`, `$.entry[0].resource`.
#[derive(Clone, Copy)]
enum Path<'p> {
    Root,
    Member(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root => f.write_str("$"),
            Self::Member(parent, name) if is_plain(name) => write!(f, "{parent}.{name}"),
            Self::Member(parent, name) => write!(f, "{parent}[{}]", quoted(name)),
            Self::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

/// A name written as is in a path: short, and letters, digits and `_` only.
fn is_plain(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A sender's name in diagnostics: quoted, visible ASCII only, and short.
fn quoted(name: &str) -> String {
    let shown: String = name
        .chars()
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' })
        .take(64)
        .collect();
    let more = if name.chars().count() > 64 { "..." } else { "" };
    format!("\"{shown}{more}\"")
}

/// The document and the place in it that a seed reads.
#[derive(Clone, Copy)]
struct Scope<'s, 'de> {
    doc: &'s Doc<'de>,
    path: &'s Path<'s>,
}

/// One member of an object being read. Its value must be read, as a [`Value`] or as a
/// tree: the map's next key comes after it (a value left unread would be taken for the key,
/// and the body refused).
struct Member<'m, 's, 'de, A> {
    map: &'m mut A,
    scope: Scope<'s, 'de>,
}

impl<'de, A: MapAccess<'de>> Member<'_, '_, 'de, A> {
    /// The value read as a [`Value`].
    fn value(&mut self) -> Result<Value, A::Error> {
        self.map.next_value_seed(ValueSeed(self.scope))
    }

    /// The value read as a [`Json`] tree.
    fn tree(&mut self) -> Result<Json<'de>, A::Error> {
        self.map.next_value_seed(TreeSeed(self.scope))
    }
}

/// Reads an object given as a map, member by member, refusing a repeated name. A map that is
/// serde_json's form of a number yields `Some` with the number as written.
fn members<'de, A: MapAccess<'de>>(
    mut map: A,
    scope: Scope<'_, 'de>,
    mut each: impl FnMut(&Cow<'de, str>, &mut Member<'_, '_, 'de, A>) -> Result<(), A::Error>,
) -> Result<Option<Number>, A::Error> {
    let doc = scope.doc;
    let start = doc.names.borrow().len();
    let mut count = 0;
    while let Some(name) = map.next_key_seed(NameSeed)? {
        if count == 0 && name == NUMBER_TOKEN {
            let text: String = map.next_value()?;
            return text.parse().map(Some).map_err(de::Error::custom);
        }
        count += 1;
        {
            let mut names = doc.names.borrow_mut();
            if count <= LINEAR_MEMBERS && names[start..].contains(&name) {
                return Err(repeated(doc, scope.path, &name));
            }
            names.push(name.clone());
        }
        let path = Path::Member(scope.path, &name);
        let mut member = Member {
            map: &mut map,
            scope: Scope { doc, path: &path },
        };
        each(&name, &mut member)?;
    }
    let mut names = doc.names.borrow_mut();
    if count > LINEAR_MEMBERS {
        let own = &mut names[start..];
        own.sort_unstable();
        if let Some(pair) = own.windows(2).find(|pair| pair[0] == pair[1]) {
            let name = pair[0].clone();
            drop(names);
            return Err(repeated(doc, scope.path, &name));
        }
    }
    names.truncate(start);
    Ok(None)
}

fn repeated<E: de::Error>(doc: &Doc<'_>, object: &Path<'_>, name: &str) -> E {
    *doc.repeated.borrow_mut() = Some(format!("{} in {object}", quoted(name)));
    E::custom("repeated member name")
}

/// A member name, borrowed from the body when it has no escapes.
struct NameSeed;

impl<'de> DeserializeSeed<'de> for NameSeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for NameSeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Builds a [`Value`], checking as it goes.
struct ValueSeed<'s, 'de>(Scope<'s, 'de>);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, 'de> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, 'de> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let path = Path::Index(self.0.path, items.len());
            let element = ValueSeed(Scope {
                doc: self.0.doc,
                path: &path,
            });
            match seq.next_element_seed(element)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        let number = members(map, self.0, |name, member| {
            object.insert(name.to_string(), member.value()?);
            Ok(())
        })?;
        Ok(number.map_or(Value::Object(object), Value::Number))
    }
}

/// Builds a [`Json`] tree borrowing from the text, checking as it goes.
struct TreeSeed<'s, 'de>(Scope<'s, 'de>);

impl<'de> DeserializeSeed<'de> for TreeSeed<'_, 'de> {
    type Value = Json<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TreeSeed<'_, 'de> {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(Cow::Owned(v.to_string())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(Cow::Owned(v.to_string())))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json<'de>, E> {
        Ok(Json::Number(Cow::Owned(v.to_string())))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::new();
        loop {
            let path = Path::Index(self.0.path, items.len());
            let element = TreeSeed(Scope {
                doc: self.0.doc,
                path: &path,
            });
            match seq.next_element_seed(element)? {
                Some(item) => items.push(item),
                None => return Ok(Json::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Json<'de>, A::Error> {
        let mut object = Vec::new();
        let number = members(map, self.0, |name, member| {
            object.push((name.clone(), member.tree()?));
            Ok(())
        })?;
        Ok(match number {
            // The number as written (`arbitrary_precision` keeps its text).
            Some(number) => Json::Number(Cow::Owned(number.to_string())),
            None => Json::Object(object),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(text: &str) -> String {
        let err = parse_value(text).unwrap_err();
        assert_eq!(err.status(), 400, "{err}");
        assert_eq!(err.issue(), IssueType::Structure, "{err}");
        err.diagnostics().to_owned()
    }

    #[test]
    fn builds_the_same_value_as_serde_json() {
        let text = r#"{"b": 1.10, "a": [1, -2, 3e400, {"z": null, "y": true}], "c": "\u00e9\n", "n": 12345678901234567890123}"#;
        let strict = parse_value(text).unwrap();
        let plain: Value = serde_json::from_str(text).unwrap();
        assert_eq!(strict, plain);
        assert_eq!(
            strict.to_string(),
            plain.to_string(),
            "numbers and member order as written"
        );
        assert!(strict.to_string().starts_with(r#"{"b":1.10,"a""#));
    }

    #[test]
    fn refuses_a_repeated_name_naming_it_and_where_it_is() {
        let d = refusal(r#"{"type": "collection", "type": "message"}"#);
        assert!(d.contains(r#""type" in $ (line 1, column"#), "{d}");
        let d =
            refusal(r#"{"entry": [{"resource": {}}, {"resource": {"id": "a", "status": "x", "id": "b"}}]}"#);
        assert!(d.contains(r#""id" in $.entry[1].resource"#), "{d}");
        let d = refusal(r#"{"a": [[{"k": 1}], [{"k": 1, "k": 2}]]}"#);
        assert!(d.contains(r#""k" in $.a[1][0]"#), "{d}");
    }

    #[test]
    fn names_are_compared_after_unescaping() {
        let d = refusal(r#"{"type": "collection", "\u0074ype": "message"}"#);
        assert!(d.contains(r#""type" in $"#), "{d}");
        refusal(r#"{"a\/b": 1, "a/b": 2}"#);
        // Different names that only look alike are different members.
        assert!(parse_value(r#"{"type": 1, "Type": 2, "type ": 3}"#).is_ok());
    }

    #[test]
    fn the_same_name_in_different_objects_is_not_repeated() {
        let v = parse_value(
            r#"{"id": 1, "meta": {"id": 2, "x": {"id": 3}}, "list": [{"id": 4}, {"id": 5}], "id2": 6}"#,
        );
        assert!(v.is_ok(), "{v:?}");
    }

    #[test]
    fn large_objects_are_checked_too() {
        let members = |n: usize| (0..n).map(|i| format!("\"m{i}\": {i}")).collect::<Vec<_>>();
        let distinct = format!("{{{}}}", members(5000).join(", "));
        assert_eq!(parse_value(&distinct).unwrap().as_object().unwrap().len(), 5000);
        let mut repeated = members(5000);
        repeated.push("\"m4321\": 0".into());
        let d = refusal(&format!("{{\"outer\": {{{}}}}}", repeated.join(", ")));
        assert!(d.contains(r#""m4321" in $.outer"#), "{d}");
    }

    #[test]
    fn malformed_json_is_refused_with_its_position() {
        let d = refusal("{\"a\": 1,\n \"b\": }");
        assert!(d.contains("not well-formed JSON (line 2, column 7)"), "{d}");
        assert!(refusal("{} {}").contains("not well-formed"));
        assert!(refusal(r#"{"$serde_json::private::Number": "not a number"}"#).contains("not well-formed"));
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(parse_value(&nested(127)).is_ok());
        assert!(refusal(&nested(129)).contains("not well-formed"));
    }

    #[test]
    fn diagnostics_never_echo_long_or_control_characters() {
        let name = format!("x\n\u{1b}[31m{}", "y".repeat(500));
        let text = format!(
            r#"{{"{0}": 1, "{0}": 2}}"#,
            name.replace('\n', "\\n").replace('\u{1b}', "\\u001b")
        );
        let d = refusal(&text);
        assert!(!d.contains('\n') && !d.contains('\u{1b}'), "{d}");
        assert!(d.len() < 300, "{d}");
        let deep = format!(r#"{{"a b": {{"{0}": {{"k": 1, "k": 1}}}}}}"#, "z".repeat(300));
        let d = refusal(&deep);
        assert!(d.contains(r#"$["a b"]["zzz"#) && d.len() < 400, "{d}");
    }
}
