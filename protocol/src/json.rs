//! Encoding messages as JSON text, byte for byte what `serde_json::to_string` writes (proven
//! in `tests/codecs.rs`), without serde's serializer machinery: `#[derive(ToJson)]`
//! (protocol-derive) reads the types' `#[serde(...)]` attributes. Both sides encode with it;
//! it exists for the wasm bundle's size (issue 7).

use std::collections::BTreeMap;

/// JSON text under construction; keeps the commas.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    /// No member or item written yet in the innermost object or array.
    first: bool,
}

impl Writer {
    /// The text written.
    pub fn finish(self) -> String {
        self.out
    }

    fn separate(&mut self) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
    }

    /// `{`
    pub fn begin_object(&mut self) {
        self.out.push('{');
        self.first = true;
    }

    /// `}`
    pub fn end_object(&mut self) {
        self.out.push('}');
        self.first = false;
    }

    /// A member's key; its value comes next.
    pub fn key(&mut self, key: &str) {
        self.separate();
        self.string(key);
        self.out.push(':');
    }

    /// `[`
    pub fn begin_array(&mut self) {
        self.out.push('[');
        self.first = true;
    }

    /// Before each array item.
    pub fn item(&mut self) {
        self.separate();
    }

    /// `]`
    pub fn end_array(&mut self) {
        self.out.push(']');
        self.first = false;
    }

    /// A string, escaped as serde_json does (quote, backslash and control characters only).
    pub fn string(&mut self, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                '\u{8}' => self.out.push_str("\\b"),
                '\u{c}' => self.out.push_str("\\f"),
                c if (c as u32) < 0x20 => {
                    self.out.push_str("\\u00");
                    self.out.push(HEX[(c as usize) >> 4] as char);
                    self.out.push(HEX[(c as usize) & 0xf] as char);
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    /// A non-negative integer.
    pub fn unsigned(&mut self, mut n: u64) {
        // Digits by hand: integer formatting is all the encoder needs from `core::fmt`.
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for &d in &digits[i..] {
            self.out.push(d as char);
        }
    }

    /// `true` or `false`.
    pub fn boolean(&mut self, b: bool) {
        self.out.push_str(if b { "true" } else { "false" });
    }

    /// `null`
    pub fn null(&mut self) {
        self.out.push_str("null");
    }
}

/// A type that writes itself as JSON.
pub trait ToJson {
    /// Writes `self` as one JSON value.
    fn write_json(&self, out: &mut Writer);

    /// `self` as JSON text.
    fn to_json(&self) -> String {
        let mut w = Writer::default();
        self.write_json(&mut w);
        w.finish()
    }
}

/// A struct that writes its fields as members of an object begun by someone else (an
/// internally tagged enum's newtype variant, after the tag).
pub trait JsonMembers {
    /// Writes the fields as `"key":value` members.
    fn write_members(&self, out: &mut Writer);
}

impl ToJson for String {
    fn write_json(&self, out: &mut Writer) {
        out.string(self);
    }
}

impl ToJson for bool {
    fn write_json(&self, out: &mut Writer) {
        out.boolean(*self);
    }
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl ToJson for $t {
            fn write_json(&self, out: &mut Writer) {
                out.unsigned(u64::from(*self));
            }
        }
    )*};
}
unsigned!(u8, u16, u32, u64);

impl<V: ToJson> ToJson for Option<V> {
    fn write_json(&self, out: &mut Writer) {
        match self {
            Some(v) => v.write_json(out),
            None => out.null(),
        }
    }
}

impl<V: ToJson> ToJson for Vec<V> {
    fn write_json(&self, out: &mut Writer) {
        out.begin_array();
        for v in self {
            out.item();
            v.write_json(out);
        }
        out.end_array();
    }
}

impl<V: ToJson> ToJson for BTreeMap<String, V> {
    fn write_json(&self, out: &mut Writer) {
        out.begin_object();
        for (k, v) in self {
            out.key(k);
            v.write_json(out);
        }
        out.end_object();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_numbers_are_written_as_serde_json_writes_them() {
        for s in [
            "",
            "plain",
            "q\"b\\s/",
            "\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}",
            "é ü 🎉 \u{2028}",
        ] {
            let mut w = Writer::default();
            w.string(s);
            assert_eq!(w.finish(), serde_json::to_string(s).unwrap(), "{s:?}");
        }
        for n in [0, 7, 10, 1_764_000_000_000, u64::MAX] {
            assert_eq!(n.to_json(), serde_json::to_string(&n).unwrap());
        }
        let v: Vec<Option<u8>> = vec![Some(1), None];
        assert_eq!(v.to_json(), "[1,null]");
        let m = BTreeMap::from([("b".to_string(), true), ("a".to_string(), false)]);
        assert_eq!(m.to_json(), r#"{"a":false,"b":true}"#);
        assert_eq!(Vec::<u8>::new().to_json(), "[]");
    }
}
