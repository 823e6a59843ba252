//! A JSON tree borrowed from a body, built by the strict parse ([`super::json::parse_tree`])
//! for what reads a whole message (its fields, [`super::validate`], the places of its ids).
//! Strings without escapes stay slices of the text, objects keep their members in order in
//! a list (FHIR objects have few, and their names are unique once the strict parse passed),
//! numbers keep their text. Building it costs a fraction of a [`serde_json::Value`]: no
//! hashing of names, no copy of the text.

use std::borrow::Cow;
use std::ops::Index;

/// A JSON value read from a body, borrowing from it.
#[derive(Debug, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    /// The number as written.
    Number(Cow<'a, str>),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    /// The members, in order.
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

/// What indexing gives for a member or element that is not there, as with a `Value`.
static NULL: Json<'static> = Json::Null;

impl<'a> Json<'a> {
    /// The member `name` of an object; `None` when absent or not an object.
    pub(crate) fn get(&self, name: &str) -> Option<&Json<'a>> {
        match self {
            Self::Object(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Self::Array(items) => Some(items),
            _ => None,
        }
    }

    pub(crate) fn is_string(&self) -> bool {
        matches!(self, Self::String(_))
    }

    pub(crate) fn is_object(&self) -> bool {
        matches!(self, Self::Object(_))
    }

    pub(crate) fn is_array(&self) -> bool {
        matches!(self, Self::Array(_))
    }
}

impl<'a> Index<&str> for Json<'a> {
    type Output = Json<'a>;

    /// The member `name`, or null.
    fn index(&self, name: &str) -> &Json<'a> {
        self.get(name).unwrap_or(&NULL)
    }
}

impl PartialEq<str> for Json<'_> {
    /// A string equal to `other`.
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

impl PartialEq<&str> for Json<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::json::parse_tree;

    #[test]
    fn reads_every_kind_of_value_borrowing_plain_strings() {
        let text = r#"{"a": "plain", "b": "esc\u0061ped", "n": 1.10, "i": -3, "t": true,
                       "z": null, "l": [1, {"x": "y"}], "o": {}}"#;
        let tree = parse_tree(text).unwrap();
        assert!(matches!(tree["a"], Json::String(Cow::Borrowed("plain"))));
        assert_eq!(tree["b"], "escaped");
        assert_eq!(tree["n"], Json::Number(Cow::Borrowed("1.10")));
        assert_eq!(tree["i"], Json::Number(Cow::Borrowed("-3")));
        assert_eq!(tree["t"], Json::Bool(true));
        assert_eq!(tree["z"], Json::Null);
        assert_eq!(tree["l"].as_array().map(<[_]>::len), Some(2));
        assert_eq!(tree["l"].as_array().unwrap()[1]["x"], "y");
        assert!(tree["o"].is_object() && tree["o"].get("x").is_none());
        assert_eq!(tree["absent"], Json::Null);
        assert_eq!(tree["a"]["deeper"], Json::Null);
        let Json::Object(members) = &tree else {
            panic!("an object")
        };
        let names: Vec<&str> = members.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(names, ["a", "b", "n", "i", "t", "z", "l", "o"]);
        assert!(parse_tree("{\"a\": }").is_err());
    }
}
