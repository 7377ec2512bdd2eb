//! `#[derive(FromTree, ToJson)]`: the protocol's JSON codecs for the wasm client, generated
//! from the same `#[serde(...)]` attributes that serde's derives read, so a message is still
//! spelled once.
//!
//! Why not serde in the browser: serde's derives are generic over every format and buffer
//! internally tagged enums through `Content`, which cost the client ~48 KB of its gzip bundle
//! (issue 7). These derives emit one small, non-visitor function per type, over
//! `protocol::tree::Tree` (any parsed JSON: the browser's `JSON.parse` result, or
//! `serde_json::Value` in tests) and `protocol::json::Writer`.
//!
//! Supported (exactly what the protocol uses; anything else is a compile error, never a
//! silent mismatch with serde): structs with named fields; enums that are either all unit
//! variants or internally tagged (`tag = "..."`) with struct and newtype variants. Attributes:
//! container `tag`, `rename_all` (`camelCase`, `lowercase`), `deny_unknown_fields`; variant
//! `rename`, `rename_all`; field `rename`, `default`, `skip_serializing_if`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields, LitStr};

/// Derives `protocol::tree::FromTree`.
#[proc_macro_derive(FromTree, attributes(serde))]
pub fn derive_from_tree(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    derive(input, from_tree)
}

/// Derives `protocol::json::ToJson`.
#[proc_macro_derive(ToJson, attributes(serde))]
pub fn derive_to_json(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    derive(input, to_json)
}

fn derive(
    input: proc_macro::TokenStream,
    body: fn(&syn::Ident, &Shape) -> TokenStream,
) -> proc_macro::TokenStream {
    syn::parse::<DeriveInput>(input)
        .and_then(|input| expand(&input, body))
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

type Result<T> = std::result::Result<T, syn::Error>;

/// The serde attributes this crate understands, from one item's `#[serde(...)]` lists.
#[derive(Default)]
struct Attrs {
    tag: Option<String>,
    rename: Option<String>,
    rename_all: Option<String>,
    deny_unknown_fields: bool,
    default: bool,
    skip_serializing_if: Option<syn::ExprPath>,
}

impl Attrs {
    fn parse(attrs: &[syn::Attribute]) -> Result<Attrs> {
        let mut out = Attrs::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
            attr.parse_nested_meta(|meta| {
                let string = || -> Result<String> { Ok(meta.value()?.parse::<LitStr>()?.value()) };
                if meta.path.is_ident("tag") {
                    out.tag = Some(string()?);
                } else if meta.path.is_ident("rename") {
                    out.rename = Some(string()?);
                } else if meta.path.is_ident("rename_all") {
                    out.rename_all = Some(string()?);
                } else if meta.path.is_ident("deny_unknown_fields") {
                    out.deny_unknown_fields = true;
                } else if meta.path.is_ident("default") {
                    out.default = true;
                } else if meta.path.is_ident("skip_serializing_if") {
                    out.skip_serializing_if = Some(meta.value()?.parse::<LitStr>()?.parse()?);
                } else {
                    return Err(meta.error("protocol-derive does not support this serde attribute"));
                }
                Ok(())
            })?;
        }
        Ok(out)
    }
}

/// serde's `rename_all` for a field (`snake_case` identifier) or a variant (`PascalCase`).
fn renamed(ident: &syn::Ident, rule: Option<&str>, is_variant: bool) -> Result<String> {
    let name = ident.to_string();
    Ok(match rule {
        None => name,
        Some("lowercase") => name.to_ascii_lowercase(),
        Some("camelCase") if is_variant => {
            let mut chars = name.chars();
            chars
                .next()
                .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
                .unwrap_or_default()
        }
        Some("camelCase") => {
            let mut out = String::new();
            let mut upper = false;
            for c in name.chars() {
                match c {
                    '_' => upper = true,
                    _ if upper => {
                        out.push(c.to_ascii_uppercase());
                        upper = false
                    }
                    _ => out.push(c),
                }
            }
            out
        }
        Some(other) => {
            return Err(syn::Error::new_spanned(
                ident,
                format!("protocol-derive does not support rename_all = \"{other}\""),
            ))
        }
    })
}

/// One named field as it appears on the wire.
struct Field {
    ident: syn::Ident,
    key: String,
    default: bool,
    skip_if: Option<syn::ExprPath>,
}

fn fields(fields: &Fields, rule: Option<&str>) -> Result<Vec<Field>> {
    let named = match fields {
        Fields::Named(named) => named,
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "protocol-derive supports named fields only",
            ))
        }
    };
    named
        .named
        .iter()
        .map(|f| {
            let attrs = Attrs::parse(&f.attrs)?;
            let ident = f.ident.clone().expect("named field");
            let key = match attrs.rename {
                Some(k) => k,
                None => renamed(&ident, rule, false)?,
            };
            Ok(Field {
                ident,
                key,
                default: attrs.default,
                skip_if: attrs.skip_serializing_if,
            })
        })
        .collect()
}

/// The shape of a type, resolved from its serde attributes.
enum Shape {
    Struct {
        fields: Vec<Field>,
        deny: bool,
    },
    Units(Vec<(syn::Ident, String)>),
    Tagged {
        tag: String,
        deny: bool,
        variants: Vec<Variant>,
    },
}

enum Variant {
    Struct {
        ident: syn::Ident,
        name: String,
        fields: Vec<Field>,
    },
    Newtype {
        ident: syn::Ident,
        name: String,
    },
}

fn shape(input: &DeriveInput) -> Result<Shape> {
    let attrs = Attrs::parse(&input.attrs)?;
    let rule = attrs.rename_all.as_deref();
    match &input.data {
        Data::Struct(s) => Ok(Shape::Struct {
            fields: fields(&s.fields, rule)?,
            deny: attrs.deny_unknown_fields,
        }),
        Data::Enum(e) => {
            let name = |v: &syn::Variant, va: &Attrs| match &va.rename {
                Some(n) => Ok(n.clone()),
                None => renamed(&v.ident, rule, true),
            };
            match attrs.tag {
                None => e
                    .variants
                    .iter()
                    .map(|v| match v.fields {
                        Fields::Unit => Ok((v.ident.clone(), name(v, &Attrs::parse(&v.attrs)?)?)),
                        _ => Err(syn::Error::new_spanned(
                            v,
                            "protocol-derive: an untagged enum must have unit variants only",
                        )),
                    })
                    .collect::<Result<_>>()
                    .map(Shape::Units),
                Some(tag) => {
                    let variants = e
                        .variants
                        .iter()
                        .map(|v| {
                            let va = Attrs::parse(&v.attrs)?;
                            let n = name(v, &va)?;
                            match &v.fields {
                                Fields::Unnamed(u) if u.unnamed.len() == 1 => {
                                    Ok(Variant::Newtype {
                                        ident: v.ident.clone(),
                                        name: n,
                                    })
                                }
                                Fields::Named(_) => Ok(Variant::Struct {
                                    ident: v.ident.clone(),
                                    name: n,
                                    fields: fields(&v.fields, va.rename_all.as_deref())?,
                                }),
                                _ => Err(syn::Error::new_spanned(
                                    v,
                                    "protocol-derive: tagged variants are structs or newtypes",
                                )),
                            }
                        })
                        .collect::<Result<_>>()?;
                    Ok(Shape::Tagged {
                        tag,
                        deny: attrs.deny_unknown_fields,
                        variants,
                    })
                }
            }
        }
        Data::Union(_) => Err(syn::Error::new_spanned(
            &input.ident,
            "protocol-derive does not support unions",
        )),
    }
}

fn expand(
    input: &DeriveInput,
    body: fn(&syn::Ident, &Shape) -> TokenStream,
) -> Result<TokenStream> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "protocol-derive does not support generics",
        ));
    }
    // The trait paths are `crate::...`: the derives are used inside the protocol crate only.
    Ok(body(&input.ident, &shape(input)?))
}

/// `FromTree` impl: checks the members, then reads each field.
fn from_tree(name_ident: &syn::Ident, shape: &Shape) -> TokenStream {
    let read = |fields: &[Field]| {
        let inits = fields.iter().map(|f| {
            let (ident, key) = (&f.ident, &f.key);
            if f.default {
                quote! { #ident: crate::tree::member_or_default(tree, #key)? }
            } else {
                quote! { #ident: crate::tree::member(tree, #key)? }
            }
        });
        quote! { #(#inits,)* }
    };
    let keys = |fields: &[Field]| {
        let keys = fields.iter().map(|f| &f.key);
        quote! { &[#(#keys),*] }
    };
    match shape {
        Shape::Struct { fields, deny } => {
            let (keys, read) = (keys(fields), read(fields));
            quote! {
                impl crate::tree::FromTree for #name_ident {
                    fn from_tree<T: crate::tree::Tree>(tree: &T) -> Result<Self, crate::tree::TreeError> {
                        crate::tree::FromMembers::from_members(tree, None)
                    }
                }
                impl crate::tree::FromMembers for #name_ident {
                    fn from_members<T: crate::tree::Tree>(
                        tree: &T,
                        tag: Option<&str>,
                    ) -> Result<Self, crate::tree::TreeError> {
                        crate::tree::check_members(tree, #keys, tag, #deny)?;
                        Ok(Self { #read })
                    }
                }
            }
        }
        Shape::Units(units) => {
            let arms = units
                .iter()
                .map(|(ident, name)| quote! { #name => Ok(Self::#ident), });
            quote! {
                impl crate::tree::FromTree for #name_ident {
                    fn from_tree<T: crate::tree::Tree>(tree: &T) -> Result<Self, crate::tree::TreeError> {
                        let name = <String as crate::tree::FromTree>::from_tree(tree)?;
                        match name.as_str() {
                            #(#arms)*
                            _ => Err(crate::tree::TreeError::unknown_variant(&name)),
                        }
                    }
                }
            }
        }
        Shape::Tagged {
            tag,
            deny,
            variants,
        } => {
            let arms = variants.iter().map(|v| match v {
                Variant::Struct {
                    ident,
                    name,
                    fields,
                } => {
                    let (keys, read) = (keys(fields), read(fields));
                    quote! {
                        #name => {
                            crate::tree::check_members(tree, #keys, Some(#tag), #deny)?;
                            Ok(Self::#ident { #read })
                        }
                    }
                }
                Variant::Newtype { ident, name } => quote! {
                    #name => Ok(Self::#ident(crate::tree::FromMembers::from_members(tree, Some(#tag))?)),
                },
            });
            quote! {
                impl crate::tree::FromTree for #name_ident {
                    fn from_tree<T: crate::tree::Tree>(tree: &T) -> Result<Self, crate::tree::TreeError> {
                        let name: String = crate::tree::tag(tree, #tag)?;
                        match name.as_str() {
                            #(#arms)*
                            _ => Err(crate::tree::TreeError::unknown_variant(&name)),
                        }
                    }
                }
            }
        }
    }
}

/// `ToJson` impl: serde_json's output exactly (tag first, fields in declaration order).
fn to_json(name_ident: &syn::Ident, shape: &Shape) -> TokenStream {
    let write = |fields: &[Field], by_ref: bool| {
        let writes = fields.iter().map(|f| {
            let (ident, key) = (&f.ident, &f.key);
            let value = if by_ref {
                quote! { #ident }
            } else {
                quote! { &self.#ident }
            };
            let put = quote! {
                out.key(#key);
                crate::json::ToJson::write_json(#value, out);
            };
            match &f.skip_if {
                Some(skip) => quote! { if !#skip(#value) { #put } },
                None => put,
            }
        });
        quote! { #(#writes)* }
    };
    match shape {
        Shape::Struct { fields, .. } => {
            let write = write(fields, false);
            quote! {
                impl crate::json::ToJson for #name_ident {
                    fn write_json(&self, out: &mut crate::json::Writer) {
                        out.begin_object();
                        crate::json::JsonMembers::write_members(self, out);
                        out.end_object();
                    }
                }
                impl crate::json::JsonMembers for #name_ident {
                    fn write_members(&self, out: &mut crate::json::Writer) {
                        #write
                    }
                }
            }
        }
        Shape::Units(units) => {
            let arms = units
                .iter()
                .map(|(ident, name)| quote! { Self::#ident => #name, });
            quote! {
                impl #name_ident {
                    /// The variant's name on the wire.
                    pub fn wire_name(&self) -> &'static str {
                        match self { #(#arms)* }
                    }
                }
                impl crate::json::ToJson for #name_ident {
                    fn write_json(&self, out: &mut crate::json::Writer) {
                        out.string(self.wire_name());
                    }
                }
            }
        }
        Shape::Tagged { tag, variants, .. } => {
            let arms = variants.iter().map(|v| match v {
                Variant::Struct {
                    ident,
                    name,
                    fields,
                } => {
                    let idents = fields.iter().map(|f| &f.ident);
                    let write = write(fields, true);
                    quote! {
                        Self::#ident { #(#idents),* } => {
                            out.key(#tag);
                            out.string(#name);
                            #write
                        }
                    }
                }
                Variant::Newtype { ident, name } => quote! {
                    Self::#ident(inner) => {
                        out.key(#tag);
                        out.string(#name);
                        crate::json::JsonMembers::write_members(inner, out);
                    }
                },
            });
            quote! {
                impl crate::json::ToJson for #name_ident {
                    fn write_json(&self, out: &mut crate::json::Writer) {
                        out.begin_object();
                        match self { #(#arms)* }
                        out.end_object();
                    }
                }
            }
        }
    }
}
