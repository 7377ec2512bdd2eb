//! Decoding messages from an already parsed JSON tree: the browser's `JSON.parse` result in
//! the client, `serde_json::Value` in tests.
//!
//! `#[derive(FromTree)]` (protocol-derive) reads the same `#[serde(...)]` attributes as serde's
//! derive, so both decoders accept the same messages (proven against serde over the goldens
//! and their mutations in `tests/codecs.rs`). It exists for the wasm bundle's size: one small
//! function per type instead of serde's visitors (issue 7).

use std::collections::BTreeMap;
use std::fmt;

/// A parsed JSON value, navigated by the decoders.
pub trait Tree: Sized {
    /// The member `key` of an object; `None` if absent or if this is not an object.
    fn member(&self, key: &str) -> Option<Self>;
    /// The keys of an object; `None` if this is not an object (arrays and null are not).
    fn keys(&self) -> Option<Vec<String>>;
    /// The items of an array; `None` if this is not an array.
    fn items(&self) -> Option<Vec<Self>>;
    /// The value of a string.
    fn string(&self) -> Option<String>;
    /// The value of a number that is a non-negative integer.
    fn unsigned(&self) -> Option<u64>;
    /// The value of a boolean.
    fn boolean(&self) -> Option<bool>;
    /// Whether this is `null`.
    fn is_null(&self) -> bool;
}

/// Why a tree is not the message it should be, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeError {
    /// Member keys and array indices, outermost first, joined by dots.
    path: String,
    problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    Expected(&'static str),
    Missing(String),
    Unknown(String),
    UnknownVariant(String),
}

impl TreeError {
    fn new(problem: Problem) -> TreeError {
        TreeError {
            path: String::new(),
            problem,
        }
    }

    /// A value of the wrong type.
    pub fn expected(what: &'static str) -> TreeError {
        TreeError::new(Problem::Expected(what))
    }

    /// A tag naming no variant.
    pub fn unknown_variant(name: &str) -> TreeError {
        TreeError::new(Problem::UnknownVariant(name.into()))
    }

    /// The same error, one level further in (under `key`).
    pub fn at(mut self, key: impl Into<String>) -> TreeError {
        let key = key.into();
        self.path = match self.path.is_empty() {
            true => key,
            false => format!("{key}.{}", self.path),
        };
        self
    }
}

impl fmt::Display for TreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        match &self.problem {
            Problem::Expected(what) => write!(f, "expected {what}"),
            Problem::Missing(key) => write!(f, "missing field `{key}`"),
            Problem::Unknown(key) => write!(f, "unknown field `{key}`"),
            Problem::UnknownVariant(name) => write!(f, "unknown variant `{name}`"),
        }
    }
}

impl std::error::Error for TreeError {}

/// A type decodable from a [`Tree`].
pub trait FromTree: Sized {
    /// Decodes `tree`.
    fn from_tree<T: Tree>(tree: &T) -> Result<Self, TreeError>;
    /// The value of an absent member, if absence is allowed (`Option` is `None`, as in serde).
    fn absent() -> Option<Self> {
        None
    }
}

/// A struct decodable from an object's members, which may also hold an enum's `tag`.
pub trait FromMembers: Sized {
    /// Decodes the members of `tree`, allowing the key `tag` besides the struct's own.
    fn from_members<T: Tree>(tree: &T, tag: Option<&str>) -> Result<Self, TreeError>;
}

/// Checks that `tree` is an object and, if `deny` (serde's `deny_unknown_fields`), that it
/// has no key besides `known` and `tag`.
pub fn check_members<T: Tree>(
    tree: &T,
    known: &[&str],
    tag: Option<&str>,
    deny: bool,
) -> Result<(), TreeError> {
    let keys = tree.keys().ok_or(TreeError::expected("an object"))?;
    match keys
        .into_iter()
        .find(|k| deny && !known.contains(&k.as_str()) && tag != Some(k.as_str()))
    {
        Some(unknown) => Err(TreeError::new(Problem::Unknown(unknown))),
        None => Ok(()),
    }
}

/// The required member `key` (or its [`FromTree::absent`] value).
pub fn member<T: Tree, V: FromTree>(tree: &T, key: &str) -> Result<V, TreeError> {
    match tree.member(key) {
        Some(v) => V::from_tree(&v).map_err(|e| e.at(key)),
        None => V::absent().ok_or_else(|| TreeError::new(Problem::Missing(key.into()))),
    }
}

/// The member `key`, or the default when absent (serde's `#[serde(default)]`).
pub fn member_or_default<T: Tree, V: FromTree + Default>(
    tree: &T,
    key: &str,
) -> Result<V, TreeError> {
    match tree.member(key) {
        Some(v) => V::from_tree(&v).map_err(|e| e.at(key)),
        None => Ok(V::default()),
    }
}

/// An internally tagged enum's tag: `tree` must be an object with the string member `key`.
pub fn tag<T: Tree>(tree: &T, key: &str) -> Result<String, TreeError> {
    if tree.keys().is_none() {
        return Err(TreeError::expected("an object"));
    }
    member(tree, key)
}

impl FromTree for String {
    fn from_tree<T: Tree>(tree: &T) -> Result<Self, TreeError> {
        tree.string().ok_or(TreeError::expected("a string"))
    }
}

impl FromTree for bool {
    fn from_tree<T: Tree>(tree: &T) -> Result<Self, TreeError> {
        tree.boolean().ok_or(TreeError::expected("a boolean"))
    }
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl FromTree for $t {
            fn from_tree<T: Tree>(tree: &T) -> Result<Self, TreeError> {
                tree.unsigned()
                    .and_then(|n| <$t>::try_from(n).ok())
                    .ok_or(TreeError::expected(concat!("an integer that fits ", stringify!($t))))
            }
        }
    )*};
}
unsigned!(u8, u16, u32, u64);

impl<V: FromTree> FromTree for Option<V> {
    fn from_tree<T: Tree>(tree: &T) -> Result<Self, TreeError> {
        match tree.is_null() {
            true => Ok(None),
            false => V::from_tree(tree).map(Some),
        }
    }
    fn absent() -> Option<Self> {
        Some(None)
    }
}

impl<V: FromTree> FromTree for Vec<V> {
    fn from_tree<T: Tree>(tree: &T) -> Result<Self, TreeError> {
        let items = tree.items().ok_or(TreeError::expected("an array"))?;
        // A loop, not `collect::<Result<_, _>>()`: its adapter is another function per type.
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(V::from_tree(item).map_err(|e| e.at(i.to_string()))?);
        }
        Ok(out)
    }
}

impl<V: FromTree> FromTree for BTreeMap<String, V> {
    fn from_tree<T: Tree>(tree: &T) -> Result<Self, TreeError> {
        let keys = tree.keys().ok_or(TreeError::expected("an object"))?;
        // Inserted one by one: `collect` sorts first, and two sort instantiations cost the
        // bundle ~6 KB gzip.
        let mut map = BTreeMap::new();
        for k in keys {
            let v = member(tree, &k)?;
            map.insert(k, v);
        }
        Ok(map)
    }
}

impl Tree for serde_json::Value {
    fn member(&self, key: &str) -> Option<Self> {
        self.as_object()?.get(key).cloned()
    }
    fn keys(&self) -> Option<Vec<String>> {
        Some(self.as_object()?.keys().cloned().collect())
    }
    fn items(&self) -> Option<Vec<Self>> {
        self.as_array().cloned()
    }
    fn string(&self) -> Option<String> {
        self.as_str().map(str::to_owned)
    }
    fn unsigned(&self) -> Option<u64> {
        self.as_u64()
    }
    fn boolean(&self) -> Option<bool> {
        self.as_bool()
    }
    fn is_null(&self) -> bool {
        self.is_null()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_path_and_the_problem() {
        let tree = json!({"a": [1, "x"]});
        let e = member::<_, Vec<u8>>(&tree, "a").unwrap_err();
        assert_eq!(e.to_string(), "a.1: expected an integer that fits u8");
        let e = member::<_, String>(&tree, "b").unwrap_err();
        assert_eq!(e.to_string(), "missing field `b`");
        assert_eq!(member::<_, Option<String>>(&tree, "b"), Ok(None));
        assert_eq!(member_or_default::<_, bool>(&tree, "b"), Ok(false));
        let e = check_members(&tree, &["b"], Some("type"), true).unwrap_err();
        assert_eq!(e.to_string(), "unknown field `a`");
        assert!(check_members(&tree, &["b"], None, false).is_ok());
        assert!(check_members(&json!([]), &[], None, false).is_err());
        assert_eq!(
            u8::from_tree(&json!(256)),
            Err(TreeError::expected("an integer that fits u8"))
        );
        assert!(u64::from_tree(&json!(-1)).is_err());
        assert!(u64::from_tree(&json!(1.5)).is_err());
    }
}
