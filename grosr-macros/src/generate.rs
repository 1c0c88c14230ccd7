//! Code generation: the struct with `#[repr(C)]`, the trait impls, and the compile-time layout
//! checks. Everything generated names grosr through absolute paths (`::grosr::...`), never
//! through the user's imports.

use proc_macro2::{Group, Ident, Span, TokenStream, TokenTree};
use quote::{ToTokens as _, quote, quote_spanned};
use syn::spanned::Spanned as _;

use crate::parse::{Body, Granularity, RecordInput, TaskArgs};
use crate::validate::Additions;

/// grosr's `MAX_RECORD_BYTES`, for the message of the size check (which compares against the
/// real constant; a const panic message must be a literal, so the number is written here).
const MAX_RECORD_BYTES: usize = 48;

/// The struct as the user wrote it, plus `#[repr(C)]` and the `Clone`/`Copy` impls the user
/// did not derive. `Clone` is implemented as `*self` rather than derived, so a field that is not
/// `Copy` is reported once (by `Copy`), not once more by `Clone`'s per-field check.
pub(crate) fn struct_item(input: &RecordInput<'_>, additions: &Additions) -> TokenStream {
    let item = input.item;
    let ident = &item.ident;
    let repr = additions.repr_c.then(|| quote!(#[repr(C)]));
    let clone = additions.clone.then(|| {
        quote! {
            #[automatically_derived]
            impl ::core::clone::Clone for #ident {
                #[inline]
                fn clone(&self) -> Self {
                    *self
                }
            }
        }
    });
    let copy = additions.copy.then(|| {
        quote! {
            #[automatically_derived]
            impl ::core::marker::Copy for #ident {}
        }
    });
    quote! {
        #repr
        #item
        #clone
        #copy
    }
}

/// The trait impls and compile-time checks of a valid record (and of a task, given its args).
pub(crate) fn impls(input: &RecordInput<'_>, task: Option<&TaskArgs>) -> TokenStream {
    let ident = &input.item.ident;
    let c_name = &input.c_name;
    // Field types with `Self` replaced by the struct's name, so they work outside its impls.
    let types: Vec<TokenStream> = input
        .fields
        .iter()
        .map(|f| replace_self(f.ty.to_token_stream(), ident))
        .collect();
    let field_idents: Vec<&Ident> = input.fields.iter().map(|f| f.ident).collect();
    let field_names: Vec<&str> = input.fields.iter().map(|f| f.c_name.as_str()).collect();

    let device_type = quote! {
        // SAFETY: `c_decl` names the C struct generated from `FIELDS`, which has this layout
        // (checked by `static_assert`s in the generated CUDA and the asserts below).
        unsafe impl ::grosr::DeviceType for #ident {
            fn c_decl(name: &::core::primitive::str) -> ::std::string::String {
                ::std::format!("{} {}", #c_name, name)
            }
            fn c_dependencies(defs: &mut ::grosr::record::CDefinitions) {
                defs.define::<Self>();
            }
        }
    };
    let record = quote! {
        // SAFETY: FIELDS lists every field in order with its `offset_of!` and `size_of`;
        // the struct is `#[repr(C)]` and the asserts below reject padding.
        unsafe impl ::grosr::Record for #ident {
            const C_NAME: &'static ::core::primitive::str = #c_name;
            const FIELDS: &'static [::grosr::Field] = &[#(
                ::grosr::Field {
                    name: #field_names,
                    offset: ::core::mem::offset_of!(#ident, #field_idents),
                    size: ::core::mem::size_of::<#types>(),
                    c_decl: <#types as ::grosr::DeviceType>::c_decl,
                }
            ),*];
            fn field_dependencies(defs: &mut ::grosr::record::CDefinitions) {
                #( <#types as ::grosr::DeviceType>::c_dependencies(defs); )*
            }
        }
    };
    let pod = quote! {
        // SAFETY: every field is a `DeviceType` (so `Pod`), the struct is `#[repr(C)]` and
        // has no padding (both asserted below), and it has no generics.
        unsafe impl ::grosr::__private::bytemuck::Zeroable for #ident {}
        // SAFETY: as above.
        unsafe impl ::grosr::__private::bytemuck::Pod for #ident {}
    };

    // Compile-time checks, each spanned at what is at fault. Field types must be device types:
    // the check names `DeviceType::c_decl` exactly as `FIELDS` does, so that rustc reports the
    // (`on_unimplemented`) error once per field rather than once per use.
    let device_type_checks = input.fields.iter().zip(&types).map(|(f, ty)| {
        quote_spanned! {f.ty.span()=> let _ = <#ty as ::grosr::DeviceType>::c_decl;}
    });
    let mut padding_checks = Vec::new();
    for (i, f) in input.fields.iter().enumerate().skip(1) {
        let (prev, prev_ty) = (input.fields[i - 1].ident, &types[i - 1]);
        let this = f.ident;
        let message = format!(
            "grosr: `{c_name}` has padding before field `{}`: order fields from the largest \
             alignment to the smallest, or add an explicit padding field",
            f.c_name
        );
        padding_checks.push(quote_spanned! {this.span()=>
            ::core::assert!(
                ::core::mem::offset_of!(#ident, #this)
                    == ::core::mem::offset_of!(#ident, #prev) + ::core::mem::size_of::<#prev_ty>(),
                #message
            );
        });
    }
    let last = input.fields.last().expect("validated: at least one field");
    let (last_ident, last_ty) = (last.ident, types.last().expect("one type per field"));
    let message = format!(
        "grosr: `{c_name}` has padding after its last field `{}`: order fields from the largest \
         alignment to the smallest, or add an explicit padding field at the end",
        last.c_name
    );
    padding_checks.push(quote_spanned! {last_ident.span()=>
        ::core::assert!(
            ::core::mem::size_of::<#ident>()
                == ::core::mem::offset_of!(#ident, #last_ident) + ::core::mem::size_of::<#last_ty>(),
            #message
        );
    });
    let size_check = task.map(|_| {
        let message = format!(
            "grosr: task record `{c_name}` is larger than {MAX_RECORD_BYTES} bytes \
             (MAX_RECORD_BYTES): pass large data through a DevicePtr"
        );
        quote_spanned! {ident.span()=>
            ::core::assert!(
                ::core::mem::size_of::<#ident>() <= ::grosr::MAX_RECORD_BYTES,
                #message
            );
        }
    });
    let checks = quote! {
        const _: () = {
            #(#device_type_checks)*
            #(#padding_checks)*
            #size_check
        };
    };

    let task_impl = task.map(|args| task_impl(ident, args));
    quote! {
        #pod
        #device_type
        #record
        #task_impl
        #checks
    }
}

/// `impl Task`: the granularity and the body (`code`, `file`, `line`).
pub(crate) fn task_impl(ident: &Ident, args: &TaskArgs) -> TokenStream {
    let granularity = match args.granularity {
        Granularity::Lane => quote!(Lane),
        Granularity::Warp => quote!(Warp),
        Granularity::Block => quote!(Block),
    };
    let (code, file, line) = match args.bodies.first() {
        Some((_, Body::Inline(lit))) => {
            // `file!()`/`line!()` spanned at the literal give the user's file and the line on
            // which the literal starts.
            let span = lit.span();
            // The text as a fresh (non-raw) literal from the macro's expansion, so lints about
            // how the user spelled it (`clippy::needless_raw_string_hashes`) stay quiet.
            let code = syn::LitStr::new(&lit.value(), Span::mixed_site().located_at(span));
            (
                quote!(#code),
                quote_spanned!(span=> ::core::file!()),
                quote_spanned!(span=> ::core::line!()),
            )
        }
        Some((_, Body::File(path))) => {
            let span = path.span();
            let full = quote_spanned! {span=>
                ::core::concat!(::core::env!("CARGO_MANIFEST_DIR"), "/", #path)
            };
            (
                quote_spanned!(span=> ::core::include_str!(#full)),
                full,
                quote!(1),
            )
        }
        Some((_, Body::Rust(closure))) => {
            return rust_task_impl(ident, &granularity, args.granularity, closure);
        }
        // Only after an error was reported: a stub that keeps uses of the task compiling.
        None => (quote!(""), quote!(""), quote!(0)),
    };
    impl_task(ident, &granularity, (code, file, line), TokenStream::new())
}

/// The `impl Task` item itself: granularity, CUDA body (`code`, `file`, `line`), then `more`
/// items (a Rust body's `CPU_BODY`, `CPU_LANES_APART`).
fn impl_task(
    ident: &Ident,
    granularity: &TokenStream,
    (code, file, line): (TokenStream, TokenStream, TokenStream),
    more: TokenStream,
) -> TokenStream {
    quote! {
        // SAFETY: the record's layout is checked as for any record; its size is asserted to be
        // at most MAX_RECORD_BYTES.
        unsafe impl ::grosr::Task for #ident {
            const GRANULARITY: ::grosr::Granularity = ::grosr::Granularity::#granularity;
            const BODY: ::grosr::CudaBody = ::grosr::CudaBody {
                code: #code,
                file: #file,
                line: #line,
            };
            #more
        }
    }
}

/// `impl Task` for a Rust body: its CUDA translation (`crate::body`), and the closure as a
/// function over the record and `grosr::body::Ctx` (`Task::CPU_BODY`), which rustc checks
/// (names, types, spawned fields) and the CPU executor runs. Untranslatable syntax: an error at its span, and the
/// impl with an empty body.
fn rust_task_impl(
    ident: &Ident,
    granularity: &TokenStream,
    gran: Granularity,
    closure: &syn::ExprClosure,
) -> TokenStream {
    let span = closure.or1_token.span;
    let (code, errors, cpu) = match crate::body::parse(closure) {
        Ok(body) => {
            let (task, ctx, block) = (&body.task, &body.ctx, &body.block);
            // The closure as a function: rustc checks it, and the CPU executor runs it.
            let apart = !meets_other_lanes(block.to_token_stream(), &ctx.to_string());
            let cpu = quote_spanned! {span=>
                const CPU_BODY: ::core::option::Option<fn(&Self, &mut ::grosr::body::Ctx)> = {
                    #[allow(unused, clippy::all)]
                    fn grosr_rust_body(#task: &#ident, #ctx: &mut ::grosr::body::Ctx) #block
                    ::core::option::Option::Some(grosr_rust_body)
                };
                const CPU_LANES_APART: bool = #apart;
            };
            match crate::body::to_cuda(&body, gran) {
                Ok(code) => (code, TokenStream::new(), cpu),
                Err(errors) => (
                    String::new(),
                    errors.iter().map(syn::Error::to_compile_error).collect(),
                    cpu,
                ),
            }
        }
        Err(e) => (String::new(), e.to_compile_error(), TokenStream::new()),
    };
    let code = syn::LitStr::new(&code, Span::mixed_site().located_at(span));
    let (file, line) = (
        quote_spanned!(span=> ::core::file!()),
        quote_spanned!(span=> ::core::line!()),
    );
    let task = impl_task(ident, granularity, (quote!(#code), file, line), cpu);
    quote! {
        #errors
        #task
    }
}

/// Whether a body may meet its other lanes: it calls a collective or a barrier, or hands its
/// `ctx` to a function (a helper could), or reads volatilely or atomically (how lanes wait for
/// each other through memory: run one after another, a waiting lane would spin for good; a
/// gang costs a few microseconds). Conservative: a name that only looks like one counts.
fn meets_other_lanes(tokens: TokenStream, ctx: &str) -> bool {
    const MEETS: [&str; 18] = [
        "read_volatile",
        "atomic_add",
        "atomic_min",
        "atomic_max",
        "atomic_exchange",
        "atomic_cas",
        "warp_sum",
        "warp_max",
        "ballot",
        "any",
        "all",
        "shuffle",
        "shuffle_xor",
        "shuffle_up",
        "shuffle_down",
        "sync_warp",
        "warp_shared",
        "sync_threads",
    ];
    let mut prev_is_ctx = false;
    for tt in tokens {
        let is_ctx = matches!(&tt, TokenTree::Ident(i) if i == ctx);
        match &tt {
            TokenTree::Ident(i) if MEETS.iter().any(|m| i == m) => return true,
            TokenTree::Group(g) if meets_other_lanes(g.stream(), ctx) => return true,
            TokenTree::Punct(p) if prev_is_ctx && p.as_char() != '.' => return true,
            _ => {}
        }
        // `ctx` at the end of a group (`f(ctx)`) is handed on too.
        if let TokenTree::Group(g) = &tt {
            if g.stream()
                .into_iter()
                .last()
                .is_some_and(|t| matches!(&t, TokenTree::Ident(i) if i == ctx))
            {
                return true;
            }
        }
        prev_is_ctx = is_ctx;
    }
    false
}

/// Replaces every `Self` in `tokens` with `ident` (keeping the span of `Self`).
fn replace_self(tokens: TokenStream, ident: &Ident) -> TokenStream {
    tokens
        .into_iter()
        .map(|tt| match tt {
            TokenTree::Ident(i) if i == "Self" => {
                let mut replaced = ident.clone();
                replaced.set_span(i.span());
                TokenTree::Ident(replaced)
            }
            TokenTree::Group(g) => {
                let mut replaced = Group::new(g.delimiter(), replace_self(g.stream(), ident));
                replaced.set_span(g.span());
                TokenTree::Group(replaced)
            }
            other => other,
        })
        .collect()
}

/// The struct as written, for the error path, less any bytemuck derives (already reported as
/// conflicting with the macro), so that they add no errors of their own.
pub(crate) fn original_struct(item: &syn::DeriveInput) -> TokenStream {
    let mut item = item.clone();
    item.attrs.retain_mut(|attr| {
        if !attr.path().is_ident("derive") {
            return true;
        }
        let Ok(paths) = attr.parse_args_with(
            syn::punctuated::Punctuated::<syn::Path, syn::Token![,]>::parse_terminated,
        ) else {
            return true;
        };
        let kept: Vec<&syn::Path> = paths
            .iter()
            .filter(|p| {
                !p.segments
                    .last()
                    .is_some_and(|s| crate::validate::is_bytemuck_derive(&s.ident))
            })
            .collect();
        if kept.len() == paths.len() {
            return true;
        }
        if kept.is_empty() {
            return false;
        }
        *attr = syn::parse_quote!(#[derive(#(#kept),*)]);
        true
    });
    item.to_token_stream()
}
