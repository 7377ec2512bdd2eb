//! Validation of the landing form: the same rules the server applies, with messages for a person.

use protocol::{validate_display_name, validate_room_name, ValidationError};

/// A landing form's fields after trimming, known valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// The room to join.
    pub room_name: String,
    /// The name shown to the others.
    pub display_name: String,
}

/// What is wrong with each field of the landing form (None: that field is fine).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormErrors {
    /// The room name's problem.
    pub room_name: Option<String>,
    /// The display name's problem.
    pub display_name: Option<String>,
}

/// Trims both fields and checks them with the protocol's rules.
pub fn validate_form(room_name: &str, display_name: &str) -> Result<JoinRequest, FormErrors> {
    let room_name = room_name.trim();
    let display_name = display_name.trim();
    let errors = FormErrors {
        room_name: validate_room_name(room_name).err().map(|e| message(&e)),
        display_name: validate_display_name(display_name)
            .err()
            .map(|e| message(&e)),
    };
    if errors.room_name.is_some() || errors.display_name.is_some() {
        return Err(errors);
    }
    Ok(JoinRequest {
        room_name: room_name.to_owned(),
        display_name: display_name.to_owned(),
    })
}

/// A validation error for a person: "room name: must not be empty" → "Room name must not be
/// empty."
pub fn message(e: &ValidationError) -> String {
    let mut field = e.field.chars();
    // Field names are ASCII ("room name"); Unicode case tables would cost the bundle 16 KB.
    let first = field.next().map(|c| c.to_ascii_uppercase().to_string());
    format!(
        "{}{} {}.",
        first.unwrap_or_default(),
        field.as_str(),
        e.problem
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_accepts() {
        let ok = validate_form("  standup ", "  Zoë <b> ").unwrap();
        assert_eq!(ok.room_name, "standup");
        assert_eq!(ok.display_name, "Zoë <b>");
    }

    #[test]
    fn explains_each_field() {
        let e = validate_form("a b", "   ").unwrap_err();
        assert_eq!(
            e.room_name.as_deref(),
            Some("Room name may only contain letters, digits, '-', '_' and '.', not ' '.")
        );
        assert_eq!(
            e.display_name.as_deref(),
            Some("Display name must not be empty.")
        );
        let e = validate_form(&"r".repeat(65), "ok").unwrap_err();
        assert_eq!(
            e.room_name.as_deref(),
            Some("Room name is 65 characters, the limit is 64.")
        );
        assert_eq!(e.display_name, None);
    }
}
