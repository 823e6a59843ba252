//! Lists as log fields. `tracing` has no list value (its `Value` trait is sealed, and lists
//! need the `valuable` support that only builds with the unstable `tracing_unstable` cfg), so
//! a list is logged as a [`LogList`]: its JSON text in any subscriber's output, and a real JSON
//! array in the binary's JSON log, whose formatter recognises it with [`field_json`].

use std::cell::Cell;
use std::fmt;

thread_local! {
    /// Set while a [`LogList`] formats itself, so that [`field_json`], which formats each
    /// field on the thread that logs it, can tell a list from text that merely looks like one
    /// (a header value a caller chose, say).
    static LIST_FORMATTED: Cell<bool> = const { Cell::new(false) };
}

/// A list of values for one log field: `client_cas = %LogList::new(&subjects)`. Displays as
/// a JSON array of strings, `["O=nhs, CN=Root","O=nhs, CN=SubCA"]`.
#[derive(Clone, PartialEq, Eq)]
pub struct LogList(Vec<String>);

impl LogList {
    /// The list of `items`, each by its `Display` form.
    pub fn new<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> Self {
        Self(items.into_iter().map(|item| item.to_string()).collect())
    }
}

impl fmt::Display for LogList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        LIST_FORMATTED.set(true);
        // Strings always serialise.
        let text = serde_json::to_string(&self.0).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl fmt::Debug for LogList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A field value as JSON, for a JSON log formatter's `record_debug`: a [`LogList`] (logged
/// with `%` or `?`) becomes its array; anything else the string of its `Debug` form, as
/// `tracing-subscriber`'s own JSON formatter writes it.
pub fn field_json(value: &dyn fmt::Debug) -> serde_json::Value {
    LIST_FORMATTED.set(false);
    let text = format!("{value:?}");
    // Only the whole value being one list makes an array: text around a list (a struct that
    // holds one, say) does not parse, and stays text.
    if LIST_FORMATTED.replace(false) {
        if let Ok(array @ serde_json::Value::Array(_)) = serde_json::from_str(&text) {
            return array;
        }
    }
    serde_json::Value::String(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_an_array_and_look_alike_text_stays_text() {
        let list = LogList::new(["O=nhs, CN=Root", "a \"quoted\" name"]);
        assert_eq!(list.to_string(), r#"["O=nhs, CN=Root","a \"quoted\" name"]"#);
        assert_eq!(
            field_json(&format_args!("{list}")),
            serde_json::json!(["O=nhs, CN=Root", "a \"quoted\" name"])
        );
        assert_eq!(
            field_json(&list),
            serde_json::json!(["O=nhs, CN=Root", "a \"quoted\" name"])
        );
        // A caller's text that reads as JSON is not reinterpreted.
        assert_eq!(
            field_json(&format_args!("{}", r#"["x"]"#)),
            serde_json::Value::String(r#"["x"]"#.into())
        );
        // A list inside other text is text.
        let wrapped = format!("{:?}", Some(LogList::new(["a"])));
        assert_eq!(
            field_json(&format_args!("{wrapped}")),
            serde_json::Value::String(wrapped)
        );
        assert_eq!(
            field_json(&Some(LogList::new(["a"]))),
            serde_json::json!(r#"Some(["a"])"#)
        );
        assert_eq!(
            field_json(&LogList::new(Vec::<String>::new())),
            serde_json::json!([])
        );
    }
}
