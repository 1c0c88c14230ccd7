//! Parsing: the attribute arguments and the annotated struct, into the shapes that
//! `validate` checks and `generate` expands. Only errors that stop parsing are reported here;
//! everything that can be checked on a parsed input is left to `validate`.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt as _;
use syn::spanned::Spanned as _;
use syn::{Data, DeriveInput, Fields, Ident, LitStr, Type};

/// Where a task's CUDA body comes from.
pub(crate) enum Body {
    /// `cuda = "..."`: the text itself.
    Inline(LitStr),
    /// `file = "..."`: a path relative to the user crate's `CARGO_MANIFEST_DIR`.
    File(LitStr),
    /// `rust = |task, ctx| { .. }`: a body in Rust syntax (`crate::body`).
    Rust(Box<syn::ExprClosure>),
}

/// The granularity named by `granularity = "..."`.
#[derive(Clone, Copy)]
pub(crate) enum Granularity {
    Lane,
    Warp,
    Block,
}

impl Granularity {
    /// Its name in the device runtime (`grosr::Gran`).
    pub(crate) fn c_name(self) -> &'static str {
        match self {
            Granularity::Lane => "GROSR_LANE",
            Granularity::Warp => "GROSR_WARP",
            Granularity::Block => "GROSR_BLOCK",
        }
    }
}

/// The arguments of `#[grosr::task(...)]`.
pub(crate) struct TaskArgs {
    /// Every body given, with the span of its key, in order (validation wants exactly one).
    pub bodies: Vec<(Span, Body)>,
    /// The granularity (warp unless given).
    pub granularity: Granularity,
    /// The argument list as written (empty when there is none), to point errors at.
    pub tokens: TokenStream,
}

impl Default for TaskArgs {
    fn default() -> Self {
        TaskArgs {
            bodies: Vec::new(),
            granularity: Granularity::Warp,
            tokens: TokenStream::new(),
        }
    }
}

const TASK_KEYS: &str = "expected `cuda = r#\"...\"#`, `file = \"path/to/body.cu\"`, \
                         `rust = |task, ctx| { .. }` or \
                         `granularity = \"lane\" | \"warp\" | \"block\"`";

/// The arguments of `#[grosr::device(...)]`: none (a helper any task may call), or
/// `granularity = "warp"` / `"block"` (a helper that meets its other lanes).
pub(crate) fn device_args(tokens: TokenStream) -> syn::Result<Option<Granularity>> {
    let mut granularity = None;
    if tokens.is_empty() {
        return Ok(None);
    }
    let parser = syn::meta::parser(|meta| {
        if !meta.path.is_ident("granularity") || granularity.is_some() {
            return Err(meta.error(
                "grosr: #[grosr::device] takes nothing or `granularity = \"warp\"` (or \"block\")",
            ));
        }
        let lit: LitStr = meta.value()?.parse()?;
        granularity = Some(match lit.value().as_str() {
            "warp" => Granularity::Warp,
            "block" => Granularity::Block,
            _ => {
                return Err(syn::Error::new(
                    lit.span(),
                    "grosr: a helper's granularity is \"warp\" (warp collectives) or \"block\" \
                     (block barriers); leave it out for a helper any task may call",
                ));
            }
        });
        Ok(())
    });
    syn::parse::Parser::parse2(parser, tokens)?;
    Ok(granularity)
}

/// Parses the arguments of `#[grosr::task(...)]`.
pub(crate) fn task_args(tokens: TokenStream) -> syn::Result<TaskArgs> {
    let mut args = TaskArgs {
        tokens: tokens.clone(),
        ..TaskArgs::default()
    };
    let mut granularity_seen = false;
    let parser = syn::meta::parser(|meta| {
        let key = meta.path.span();
        if meta.path.is_ident("cuda") || meta.path.is_ident("file") {
            let lit: LitStr = meta.value()?.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "grosr: expected a string literal, e.g. `cuda = r#\"...\"#`",
                )
            })?;
            let body = if meta.path.is_ident("cuda") {
                Body::Inline(lit)
            } else {
                Body::File(lit)
            };
            args.bodies.push((key, body));
            Ok(())
        } else if meta.path.is_ident("rust") {
            let expr: syn::Expr = meta.value()?.parse()?;
            match expr {
                syn::Expr::Closure(c) => {
                    args.bodies.push((key, Body::Rust(Box::new(c))));
                    Ok(())
                }
                other => Err(syn::Error::new(
                    other.span(),
                    "grosr: `rust` takes a closure: `rust = |task, ctx| { .. }`",
                )),
            }
        } else if meta.path.is_ident("granularity") {
            if granularity_seen {
                return Err(meta.error("grosr: `granularity` is given twice"));
            }
            granularity_seen = true;
            let lit: LitStr = meta.value()?.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "grosr: expected a string literal: `granularity = \"lane\"`, `\"warp\"` or `\"block\"`",
                )
            })?;
            args.granularity = match lit.value().as_str() {
                "lane" => Granularity::Lane,
                "warp" => Granularity::Warp,
                "block" => Granularity::Block,
                other => {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!(
                            "grosr: unknown granularity `{other}`: expected \"lane\" (one thread), \
                             \"warp\" (32 threads, the default) or \"block\" (a thread block)"
                        ),
                    ));
                }
            };
            Ok(())
        } else {
            let name = meta.path.get_ident().map_or_else(
                || {
                    quote::ToTokens::to_token_stream(&meta.path)
                        .to_string()
                        .replace(' ', "")
                },
                ToString::to_string,
            );
            Err(meta.error(format!(
                "grosr: unknown #[grosr::task] argument `{name}`: {TASK_KEYS}"
            )))
        }
    });
    syn::parse::Parser::parse2(parser, tokens)?;
    Ok(args)
}

/// Checks that `#[grosr::record]` got no arguments.
pub(crate) fn record_args(tokens: TokenStream) -> syn::Result<()> {
    if tokens.is_empty() {
        Ok(())
    } else {
        Err(syn::Error::new_spanned(
            tokens,
            "grosr: #[grosr::record] takes no arguments",
        ))
    }
}

/// One field of the record.
pub(crate) struct FieldInfo<'a> {
    /// The field's identifier as written (possibly raw: `r#in`).
    pub ident: &'a Ident,
    /// Its name in C (the identifier without `r#`).
    pub c_name: String,
    /// Its type as written.
    pub ty: &'a Type,
    /// Its field attributes.
    pub attrs: &'a [syn::Attribute],
}

/// The annotated struct, once known to be a struct with named fields.
pub(crate) struct RecordInput<'a> {
    /// The whole item, as the user wrote it.
    pub item: &'a DeriveInput,
    /// Its C name (the identifier without `r#`).
    pub c_name: String,
    /// Its fields, in order (at least one).
    pub fields: Vec<FieldInfo<'a>>,
}

/// Reads the struct; rejects enums, unions, tuple and unit structs, and structs without fields.
pub(crate) fn record_input(item: &DeriveInput) -> syn::Result<RecordInput<'_>> {
    let named = match &item.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => named,
            Fields::Unnamed(unnamed) => {
                return Err(syn::Error::new_spanned(
                    unnamed,
                    "grosr: tuple structs cannot be records: name the fields \
                     (`struct S { x: f32, n: u32 }`) so the C struct can declare them",
                ));
            }
            Fields::Unit => {
                return Err(syn::Error::new_spanned(
                    &item.ident,
                    "grosr: a record needs at least one field: C has no empty structs",
                ));
            }
        },
        Data::Enum(e) => {
            let (enum_token, ident) = (e.enum_token, &item.ident);
            return Err(syn::Error::new_spanned(
                quote::quote!(#enum_token #ident),
                "grosr: enums cannot be records (their layout has no plain C equivalent): \
                 use a u32 field holding constants, or a struct",
            ));
        }
        Data::Union(u) => {
            let (union_token, ident) = (u.union_token, &item.ident);
            return Err(syn::Error::new_spanned(
                quote::quote!(#union_token #ident),
                "grosr: unions cannot be records: use a byte array `[u8; N]` and read it \
                 with bytemuck, or a struct",
            ));
        }
    };
    if named.named.is_empty() {
        return Err(syn::Error::new_spanned(
            &item.ident,
            "grosr: a record needs at least one field: C has no empty structs",
        ));
    }
    let fields = named
        .named
        .iter()
        .map(|f| {
            let ident = f.ident.as_ref().expect("named fields have identifiers");
            FieldInfo {
                ident,
                c_name: ident.unraw().to_string(),
                ty: &f.ty,
                attrs: &f.attrs,
            }
        })
        .collect();
    Ok(RecordInput {
        item,
        c_name: item.ident.unraw().to_string(),
        fields,
    })
}
