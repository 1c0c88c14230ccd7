//! Validation: the syntactic rules a record must follow, each broken rule reported at the
//! offending token with what to write instead. The layout rules that need type information
//! (no padding, field types are device types, task size) are compile-time asserts emitted by
//! `generate`.

use proc_macro2::Span;
use syn::punctuated::Punctuated;
use syn::{GenericParam, Meta, Token, Type};

use crate::parse::{Body, RecordInput, TaskArgs};

/// Errors collected while checking, reported together as thiserror does.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }
    pub(crate) fn append(&mut self, other: Errors) {
        if let Some(error) = other.0 {
            self.push(error);
        }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }
    pub(crate) fn into_compile_errors(self) -> proc_macro2::TokenStream {
        self.0.map(|e| e.to_compile_error()).unwrap_or_default()
    }
}

/// What the struct needs added to become a record (when it is valid).
pub(crate) struct Additions {
    /// Whether to add `#[repr(C)]` (false when the user wrote it).
    pub repr_c: bool,
    /// Whether to implement `Clone` (false when the user derived it).
    pub clone: bool,
    /// Whether to implement `Copy` (false when the user derived it).
    pub copy: bool,
}

/// Checks the task's arguments: exactly one body.
pub(crate) fn task_args(args: &TaskArgs, errors: &mut Errors) {
    match args.bodies.as_slice() {
        [] => {
            let message = "grosr: #[grosr::task] needs a body: CUDA inline (`cuda = r#\"...\"#`) \
                           or from a file (`file = \"path/to/body.cu\"`, relative to the crate's \
                           Cargo.toml), or Rust (`rust = |task, ctx| { .. }`)";
            errors.push(if args.tokens.is_empty() {
                syn::Error::new(Span::call_site(), message)
            } else {
                syn::Error::new_spanned(&args.tokens, message)
            });
        }
        [(_, Body::File(path))] => {
            let value = path.value();
            if value.starts_with('/') || value.starts_with('\\') || value.get(1..2) == Some(":") {
                errors.push(syn::Error::new(
                    path.span(),
                    "grosr: `file` is relative to the crate's Cargo.toml directory \
                     (CARGO_MANIFEST_DIR): write a relative path, e.g. `file = \"cuda/body.cu\"`",
                ));
            } else if std::env::var_os("CARGO_MANIFEST_DIR")
                .is_some_and(|dir| !std::path::Path::new(&dir).join(&value).is_file())
            {
                // Said here, without the absolute path `include_str!` would print.
                errors.push(syn::Error::new(
                    path.span(),
                    format!(
                        "grosr: no file `{value}` in the crate's Cargo.toml directory \
                         (CARGO_MANIFEST_DIR), which `file` is relative to"
                    ),
                ));
            }
        }
        [_] => {}
        [(_, first), rest @ ..] => {
            for (span, body) in rest {
                let message = match (first, body) {
                    (Body::Inline(_), Body::Inline(_)) => "grosr: `cuda` is given twice",
                    (Body::File(_), Body::File(_)) => "grosr: `file` is given twice",
                    (Body::Rust(_), Body::Rust(_)) => "grosr: `rust` is given twice",
                    _ => {
                        "grosr: give the task one body: inline CUDA (`cuda = \"...\"`), a CUDA \
                         file (`file = \"...\"`) or Rust (`rust = |task, ctx| { .. }`)"
                    }
                };
                errors.push(syn::Error::new(*span, message));
            }
        }
    }
}

/// Checks the struct and its fields; returns what the expansion must add to it.
pub(crate) fn record(input: &RecordInput<'_>, errors: &mut Errors) -> Additions {
    let item = input.item;
    check_generics(&item.generics, errors);
    check_c_name(&item.ident, &input.c_name, "struct", errors);
    let repr_c = check_repr(&item.attrs, errors);
    let (clone, copy) = check_derives(&item.attrs, errors);
    for field in &input.fields {
        check_c_name(field.ident, &field.c_name, "field", errors);
        check_type(field.ty, errors);
        for attr in field.attrs {
            if attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr") {
                errors.push(syn::Error::new_spanned(
                    attr,
                    "grosr: `#[cfg]` and `#[cfg_attr]` are not supported on record fields: \
                     the C struct must have the same fields in every build",
                ));
            }
        }
    }
    Additions {
        repr_c: !repr_c,
        clone: !clone,
        copy: !copy,
    }
}

fn check_generics(generics: &syn::Generics, errors: &mut Errors) {
    for param in &generics.params {
        let message = match param {
            GenericParam::Lifetime(_) => {
                "grosr: records cannot have lifetime parameters: a record is copied to the GPU \
                 and cannot borrow host data (use grosr::DevicePtr<T> for device memory)"
            }
            GenericParam::Type(_) => {
                "grosr: records cannot be generic: the C struct needs one concrete layout; \
                 declare one record per field type"
            }
            GenericParam::Const(_) => {
                "grosr: records cannot have const parameters: the C struct needs one concrete \
                 layout; declare one record per size"
            }
        };
        errors.push(syn::Error::new_spanned(param, message));
    }
    if let Some(where_clause) = &generics.where_clause {
        errors.push(syn::Error::new_spanned(
            where_clause,
            "grosr: records cannot have a where clause",
        ));
    }
}

/// C and C++ keywords (CUDA is C++), plus names the generated code reserves.
const C_KEYWORDS: &[&str] = &[
    // C
    "auto",
    "break",
    "case",
    "char",
    "const",
    "continue",
    "default",
    "do",
    "double",
    "else",
    "enum",
    "extern",
    "float",
    "for",
    "goto",
    "if",
    "inline",
    "int",
    "long",
    "register",
    "restrict",
    "return",
    "short",
    "signed",
    "sizeof",
    "static",
    "struct",
    "switch",
    "typedef",
    "union",
    "unsigned",
    "void",
    "volatile",
    "while",
    // C++
    "alignas",
    "alignof",
    "and",
    "and_eq",
    "asm",
    "bitand",
    "bitor",
    "bool",
    "catch",
    "char8_t",
    "char16_t",
    "char32_t",
    "class",
    "compl",
    "concept",
    "const_cast",
    "consteval",
    "constexpr",
    "constinit",
    "co_await",
    "co_return",
    "co_yield",
    "decltype",
    "delete",
    "dynamic_cast",
    "explicit",
    "export",
    "false",
    "friend",
    "mutable",
    "namespace",
    "new",
    "noexcept",
    "not",
    "not_eq",
    "nullptr",
    "operator",
    "or",
    "or_eq",
    "private",
    "protected",
    "public",
    "reinterpret_cast",
    "requires",
    "static_assert",
    "static_cast",
    "template",
    "this",
    "thread_local",
    "throw",
    "true",
    "try",
    "typeid",
    "typename",
    "using",
    "virtual",
    "wchar_t",
    "xor",
    "xor_eq",
    "offsetof",
];

/// Names that task bodies see as variables.
const BODY_NAMES: &[&str] = &["task", "ctx"];

fn check_c_name(ident: &syn::Ident, c_name: &str, what: &str, errors: &mut Errors) {
    let message = if C_KEYWORDS.contains(&c_name) {
        format!(
            "grosr: `{c_name}` is a C/C++ keyword and cannot name a {what} of the generated CUDA \
             code: rename it (e.g. `{c_name}_`)"
        )
    } else if BODY_NAMES.contains(&c_name) {
        format!(
            "grosr: `{c_name}` is reserved: task bodies see the variables `task` and `ctx`; \
             rename the {what} (e.g. `{c_name}_`)"
        )
    } else if c_name.starts_with("__")
        || (c_name.starts_with('_') && c_name[1..].starts_with(|c: char| c.is_ascii_uppercase()))
    {
        format!(
            "grosr: `{c_name}` is reserved in C/C++ (names starting with `__` or `_` and a \
             capital letter belong to the compiler): rename the {what}"
        )
    } else if what == "struct" && c_name.to_ascii_lowercase().starts_with("grosr") {
        format!(
            "grosr: struct names starting with `grosr` are reserved for the generated CUDA code: \
             rename `{c_name}`"
        )
    } else {
        return;
    };
    errors.push(syn::Error::new(ident.span(), message));
}

/// Checks the user's `#[repr]` attributes; returns whether `#[repr(C)]` is among them.
fn check_repr(attrs: &[syn::Attribute], errors: &mut Errors) -> bool {
    let mut has_c = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("repr")) {
        let metas = match attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated) {
            Ok(metas) => metas,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for meta in metas {
            if meta.path().is_ident("C") {
                has_c = true;
                continue;
            }
            let shown = quote::ToTokens::to_token_stream(&meta)
                .to_string()
                .replace(' ', "");
            errors.push(syn::Error::new_spanned(
                &meta,
                format!(
                    "grosr: `#[repr({shown})]` is not allowed on a record: records are always \
                     `#[repr(C)]` (the macro adds it) with no padding, so their C twin has the \
                     same layout; reorder the fields or add explicit padding fields instead"
                ),
            ));
        }
    }
    has_c
}

/// Checks the user's derives; returns whether they include `Clone` and `Copy`.
fn check_derives(attrs: &[syn::Attribute], errors: &mut Errors) -> (bool, bool) {
    let (mut clone, mut copy) = (false, false);
    for attr in attrs.iter().filter(|a| a.path().is_ident("derive")) {
        let Ok(paths) = attr.parse_args_with(Punctuated::<syn::Path, Token![,]>::parse_terminated)
        else {
            continue; // rustc reports malformed derives itself
        };
        for path in paths {
            let Some(last) = path.segments.last() else {
                continue;
            };
            match last.ident.to_string().as_str() {
                "Clone" => clone = true,
                "Copy" => copy = true,
                name if is_bytemuck_derive(&last.ident) => {
                    errors.push(syn::Error::new_spanned(
                        &path,
                        format!(
                            "grosr: remove this derive: the macro implements bytemuck's \
                             `Pod` and `Zeroable` for records itself (`{name}` would conflict)"
                        ),
                    ));
                }
                _ => {}
            }
        }
    }
    (clone, copy)
}

/// Whether a derive's name is one of bytemuck's, which the macro implements itself.
pub(crate) fn is_bytemuck_derive(ident: &syn::Ident) -> bool {
    ["Pod", "Zeroable", "AnyBitPattern", "NoUninit"]
        .iter()
        .any(|name| ident == name)
}

/// Rejects field types that have no C equivalent, saying what to use instead.
fn check_type(ty: &Type, errors: &mut Errors) {
    let message: String = match ty {
        Type::Array(array) => return check_type(&array.elem, errors),
        Type::Paren(paren) => return check_type(&paren.elem, errors),
        Type::Group(group) => return check_type(&group.elem, errors),
        Type::Reference(_) => "grosr: references cannot be record fields: a record is copied to \
                               the GPU, which cannot follow a host reference; use \
                               grosr::DevicePtr<T> for device memory"
            .into(),
        Type::Ptr(_) => "grosr: raw pointers cannot be record fields: use grosr::DevicePtr<T> \
                         (a device address that is `T*` in CUDA)"
            .into(),
        Type::Tuple(t) if t.elems.is_empty() => {
            "grosr: `()` cannot be a record field: it has no C equivalent; remove the field".into()
        }
        Type::Tuple(_) => "grosr: tuples cannot be record fields (their layout is unspecified): \
                           use separate fields, or a struct declared with #[grosr::record]"
            .into(),
        Type::Slice(_) => "grosr: slices cannot be record fields: use a fixed-size array \
                           `[T; N]`, or a grosr::DevicePtr<T> to device memory"
            .into(),
        Type::BareFn(_) => "grosr: function pointers cannot be record fields: host functions \
                            cannot run on the GPU"
            .into(),
        Type::TraitObject(_) | Type::ImplTrait(_) => "grosr: trait objects cannot be record \
                                                      fields: use a concrete device type"
            .into(),
        Type::Never(_) => "grosr: `!` cannot be a record field".into(),
        Type::Path(path) if path.qself.is_none() => {
            let Some(last) = path.path.segments.last() else {
                return;
            };
            let name = last.ident.to_string();
            match name.as_str() {
                "bool" => "grosr: `bool` cannot be a record field (not every byte is a valid \
                           bool, and C's bool may differ): use u8 or u32"
                    .into(),
                "char" => "grosr: `char` cannot be a record field (C's char is one byte): use \
                           u32 for a Unicode scalar value, or u8 for a byte"
                    .into(),
                "usize" | "isize" => {
                    let fixed = if name == "usize" { "u64" } else { "i64" };
                    format!(
                        "grosr: `{name}` cannot be a record field: use {fixed} (the width must \
                         match C on every target)"
                    )
                }
                "u128" | "i128" => format!(
                    "grosr: `{name}` cannot be a record field: CUDA C has no 128-bit integer \
                     type; use `[u64; 2]`"
                ),
                "str" | "String" => format!(
                    "grosr: `{name}` cannot be a record field: use a fixed byte array \
                     `[u8; N]`, or a grosr::DevicePtr<u8> to bytes in device memory"
                ),
                "Vec" | "Box" => format!(
                    "grosr: `{name}` cannot be a record field: it owns host memory the GPU \
                     cannot read; use grosr::DevicePtr<T> to device memory, or a fixed-size \
                     array `[T; N]`"
                ),
                "Option" => "grosr: `Option` cannot be a record field: use a plain field with a \
                             sentinel value or a u8/u32 flag (DevicePtr::null() for pointers)"
                    .into(),
                _ => {
                    // Look inside generic arguments: `DevicePtr<bool>`, `DevicePtr<[usize; 4]>`.
                    if let syn::PathArguments::AngleBracketed(args) = &last.arguments {
                        for arg in &args.args {
                            if let syn::GenericArgument::Type(inner) = arg {
                                check_type(inner, errors);
                            }
                        }
                    }
                    return;
                }
            }
        }
        _ => return,
    };
    errors.push(syn::Error::new_spanned(ty, message));
}
