//! `POST /ext/analytics/track`: custom events `{"name": "signup", "properties": {…}}`.

use annex_core::ApiError;
use axum::http::StatusCode;
use serde_json::{Map, Value};

/// Longest event name.
pub(crate) const MAX_NAME: usize = 64;
/// Largest `properties` object, serialized.
pub(crate) const MAX_PROPERTIES_BYTES: usize = 4096;

/// A validated custom event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TrackedEvent {
    pub(crate) name: String,
    pub(crate) properties: Value,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_event", message)
}

/// Parses and checks a track body: a JSON object with a `name` of 1 to 64 characters from
/// `[A-Za-z0-9_.:-]` and an optional `properties` object of at most 4 KiB.
pub(crate) fn parse(body: &[u8]) -> Result<TrackedEvent, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        invalid(format!("the body is not JSON ({e}); send {{\"name\": \"…\", \"properties\": {{…}}}}"))
    })?;
    let Value::Object(mut object) = value else {
        return Err(invalid("the body must be a JSON object {\"name\": \"…\", \"properties\": {…}}"));
    };
    if let Some(unknown) = object.keys().find(|k| !matches!(k.as_str(), "name" | "properties")) {
        return Err(invalid(format!("unknown field `{unknown}`; the fields are name and properties")));
    }
    let name = match object.remove("name") {
        Some(Value::String(name)) => name,
        Some(_) => return Err(invalid("field `name` must be a string")),
        None => return Err(invalid("field `name` is required")),
    };
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(invalid(format!("field `name` must have 1 to {MAX_NAME} characters")));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
    {
        return Err(invalid(format!(
            "field `name` contains `{c}`; use letters, digits and _ . : - (such as `signup` or `cart.checkout`)"
        )));
    }
    let properties = match object.remove("properties") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::Object(p)) => Value::Object(p),
        Some(_) => return Err(invalid("field `properties` must be a JSON object")),
    };
    if properties.to_string().len() > MAX_PROPERTIES_BYTES {
        return Err(invalid(format!("field `properties` is larger than {MAX_PROPERTIES_BYTES} bytes")));
    }
    Ok(TrackedEvent { name, properties })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_named_event_with_properties_is_accepted() {
        let e = parse(br#"{"name":"cart.checkout","properties":{"total":12}}"#).unwrap();
        assert_eq!((e.name.as_str(), e.properties), ("cart.checkout", json!({"total": 12})));
        assert_eq!(parse(br#"{"name":"signup"}"#).unwrap().properties, json!({}));
    }

    #[test]
    fn bad_bodies_are_422_with_a_reason() {
        let big = format!(r#"{{"name":"x","properties":{{"p":"{}"}}}}"#, "a".repeat(5000));
        for (body, needle) in [
            ("not json", "not JSON"),
            ("[1]", "JSON object"),
            ("{}", "`name` is required"),
            (r#"{"name":7}"#, "must be a string"),
            (r#"{"name":""}"#, "1 to 64"),
            (r#"{"name":"has space"}"#, "contains ` `"),
            (r#"{"name":"x","properties":[1]}"#, "`properties` must be"),
            (r#"{"name":"x","extra":1}"#, "unknown field `extra`"),
            (big.as_str(), "larger than"),
        ] {
            let err = parse(body.as_bytes()).unwrap_err();
            assert_eq!((err.status().as_u16(), err.code()), (422, "invalid_event"));
            assert!(err.message().contains(needle), "{needle} not in {}", err.message());
        }
    }
}
