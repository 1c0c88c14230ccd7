//! Procedural macros of grosr: `#[grosr::task]` and `#[grosr::record]`.
//!
//! Use them through the `grosr` crate, which re-exports them and holds the traits they
//! implement (`grosr::record`). The crate is laid out like `thiserror-impl`: `parse` reads the
//! attribute arguments and the struct, `validate` rejects what has no C equivalent (each error
//! at the offending token), `generate` writes the struct, its impls and its compile-time layout
//! checks.

mod body;
mod generate;
mod parse;
mod validate;

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;

use validate::Errors;

/// Declares a task: a plain-data record that the GPU scheduler queues, plus the CUDA body that
/// runs it.
///
/// ```ignore
/// use grosr::DevicePtr;
///
/// /// Adds `a` to `n` floats at `x`, one warp per task.
/// #[grosr::task(cuda = r#"
///     for (uint32_t i = ctx.lane(); i < task.n; i += ctx.width()) {
///         task.x[i] += task.a;
///     }
/// "#)]
/// struct AddScalar {
///     x: DevicePtr<f32>,
///     n: u32,
///     a: f32,
/// }
///
/// /// One thread per task; the body lives in a file next to Cargo.toml.
/// #[grosr::task(file = "cuda/visit.cu", granularity = "lane")]
/// struct Visit {
///     node: u64,
/// }
/// ```
///
/// # Arguments
///
/// - `cuda = "..."`: the body, inline (usually a raw string `r#"..."#`). NVRTC errors point at
///   the Rust file and line where the literal starts.
/// - `file = "path.cu"`: the body read from a file, relative to the crate's `Cargo.toml`
///   directory (`CARGO_MANIFEST_DIR`), like `include_str!`.
/// - `rust = |task, ctx| { .. }`: the body in Rust syntax, checked by rustc against the record
///   and `grosr::body::Ctx`, and translated to CUDA (the subset and its translation:
///   `grosr::body`). Exactly one of `cuda`, `file` and `rust`.
/// - `granularity = "lane" | "warp" | "block"` (default `"warp"`): how many GPU threads run
///   one task: one thread, one warp of 32, or a whole thread block.
///
/// # What the body sees
///
/// A `cuda`/`file` body is a list of CUDA C++ statements, run by every thread of the task,
/// with (a `rust` body sees `task: &T` and `ctx: &mut grosr::body::Ctx` instead):
///
/// - `task`: `const T&`, the record, with the same field names as the Rust struct
///   (a `DevicePtr<f32>` field is a `float*`, a `[u32; 4]` field a `uint32_t[4]`, a record
///   field a struct of the same name);
/// - `ctx`: `grosr::Ctx&`, the scheduler context: `ctx.lane()` is this thread's index in the
///   task (0 for `"lane"`, 0..32 for `"warp"`, `threadIdx.x` for `"block"`), `ctx.width()` the
///   number of threads running it (1, 32 or `blockDim.x`), `ctx.index()` the task's item in a
///   range (`Runtime::submit_range`, `TaskGraph::add_range`; 0 outside one).
///
/// # Rules
///
/// Everything `#[grosr::record]` requires, and in addition the record must be at most
/// `grosr::MAX_RECORD_BYTES` (48) bytes: pass larger data through a `DevicePtr`.
///
/// The macro adds `#[repr(C)]`, implements `Clone` and `Copy` unless you derive them, and
/// implements `bytemuck::Pod`, `bytemuck::Zeroable`, `grosr::DeviceType`,
/// `grosr::Record` and `grosr::Task`.
#[proc_macro_attribute]
pub fn task(args: TokenStream, input: TokenStream) -> TokenStream {
    expand(Kind::Task, args.into(), &input.into()).into()
}

/// Declares a record: a plain-data struct with the same layout in Rust and in CUDA C, usable
/// as a field of tasks and other records (or behind a `DevicePtr`).
///
/// ```ignore
/// use grosr::DevicePtr;
///
/// #[grosr::record]
/// struct Particle {
///     pos: [f32; 3],
///     mass: f32,
/// }
///
/// #[grosr::record]
/// struct Node {
///     next: DevicePtr<Node>, // `Node *next;` in C: linked structures are fine
///     value: u32,
///     tag: [u8; 4],
/// }
///
/// #[grosr::task(granularity = "block", cuda = r#"
///     Particle* p = task.particles;
///     for (uint32_t i = ctx.lane(); i < task.n; i += ctx.width()) {
///         p[i].pos[1] -= 9.81f * task.dt;
///     }
/// "#)]
/// struct Fall {
///     particles: DevicePtr<Particle>,
///     n: u32,
///     dt: f32,
/// }
/// ```
///
/// In CUDA, `Particle` is `struct Particle { float pos[3]; float mass; };`, followed by
/// `static_assert`s that its size and offsets match Rust's.
///
/// # Rules
///
/// Checked by the macro, each error pointing at the offending token:
///
/// - a struct with named fields, at least one, without generics or lifetimes;
/// - field types are integers (`u8`..`u64`, `i8`..`i64`), `f32`, `f64`, `grosr::DevicePtr<T>`,
///   fixed arrays of these, or other records. Not `bool` (use `u8`/`u32`), `char`,
///   `usize`/`isize` (use `u64`/`i64`), references or raw pointers (use `DevicePtr<T>`),
///   tuples, slices, strings, `Vec`, `Box` or `Option`;
/// - no padding: order the fields from the largest alignment to the smallest, or add explicit
///   padding fields (checked at compile time);
/// - no `#[repr]` other than `#[repr(C)]` (which the macro adds);
/// - field names are not C/C++ keywords (`int`, `float`, `class`, `new`, ...) nor `task` or
///   `ctx`, and the struct name does not start with `grosr`.
///
/// The macro adds `#[repr(C)]`, implements `Clone` and `Copy` unless you derive them, and
/// implements `bytemuck::Pod`, `bytemuck::Zeroable`, `grosr::DeviceType` and
/// `grosr::Record`. Do not derive `Pod`/`Zeroable` yourself.
#[proc_macro_attribute]
pub fn record(args: TokenStream, input: TokenStream) -> TokenStream {
    expand(Kind::Record, args.into(), &input.into()).into()
}

/// Declares a helper function for Rust task bodies (`rust = |task, ctx| { .. }`), written in
/// the same subset (`grosr::body`): the function stays as written (rustc checks it and every
/// call), and a type of the same name carries its CUDA translation, which a runtime takes with
/// `RuntimeBuilder::helper::<name>()` (register a helper before the helpers that call it). A
/// `&Ctx` (or `&mut Ctx`, to spawn) parameter gives the helper the context. Warp collectives
/// need `#[grosr::device(granularity = "warp")]` (block barriers `"block"`): such a helper is
/// called from tasks (and helpers) of that granularity only, which the build checks.
///
/// ```ignore
/// #[grosr::device]
/// fn blend(a: f32, b: f32, w: f32) -> f32 {
///     a + (b - a) * w
/// }
///
/// #[grosr::task(granularity = "lane", rust = |task, ctx| {
///     ctx.write(task.out, 0u32, blend(task.a, task.b, 0.25));
/// })]
/// struct Mix { out: grosr::DevicePtr<f32>, a: f32, b: f32 }
///
/// let builder = grosr::Runtime::builder().helper::<blend>().task::<Mix>();
/// ```
#[proc_macro_attribute]
pub fn device(args: TokenStream, input: TokenStream) -> TokenStream {
    let args = TokenStream2::from(args);
    let input = TokenStream2::from(input);
    let mut errors = Vec::new();
    let granularity = match parse::device_args(args) {
        Ok(g) => g,
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let item = match syn::parse2::<syn::ItemFn>(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            let e = syn::Error::new(
                Span::call_site(),
                "grosr: #[grosr::device] applies to a function",
            );
            return quote! { #input }
                .into_iter()
                .chain(e.to_compile_error())
                .collect::<TokenStream2>()
                .into();
        }
    };
    let code = match body::device_fn_to_cuda(&item, granularity) {
        Ok(code) => code,
        Err(e) => {
            errors.extend(e);
            String::new()
        }
    };
    let errors: TokenStream2 = errors.iter().map(syn::Error::to_compile_error).collect();
    // On the CPU backend a granular helper first checks its caller's granularity, which a GPU
    // build checks at each call (the translation's static_assert).
    let mut item = item;
    if let (Some(g), Some(ctx)) = (granularity, body::ctx_param(&item.sig)) {
        let (name, warp) = (
            item.sig.ident.to_string(),
            matches!(g, parse::Granularity::Warp),
        );
        let check: syn::Stmt = syn::parse_quote! {
            ::grosr::body::Ctx::__helper_granularity(&*#ctx, #name, #warp);
        };
        item.block.stmts.insert(0, check);
    }
    let (vis, ident) = (&item.vis, &item.sig.ident);
    quote! {
        #errors
        #item
        /// The CUDA translation of the function of the same name (`#[grosr::device]`).
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #ident {}
        impl ::grosr::body::DeviceFn for #ident {
            const CUDA: &'static str = #code;
        }
    }
    .into()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Record,
    Task,
}

fn expand(kind: Kind, args: TokenStream2, input: &TokenStream2) -> TokenStream2 {
    let mut errors = Errors::default();
    let task_args = match kind {
        Kind::Task => Some(match parse::task_args(args) {
            Ok(mut args) => {
                validate::task_args(&args, &mut errors);
                if !errors.is_empty() {
                    // Reported: expand with a stub body rather than one that fails again.
                    args.bodies.clear();
                }
                args
            }
            Err(e) => {
                errors.push(e);
                parse::TaskArgs::default()
            }
        }),
        Kind::Record => {
            if let Err(e) = parse::record_args(args) {
                errors.push(e);
            }
            None
        }
    };
    let Ok(item) = syn::parse2::<syn::DeriveInput>(input.clone()) else {
        let name = if kind == Kind::Task { "task" } else { "record" };
        errors.push(syn::Error::new(
            Span::call_site(),
            format!("grosr: #[grosr::{name}] applies to a struct with named fields"),
        ));
        return with_errors(errors, input);
    };
    let record = match parse::record_input(&item) {
        Ok(record) => record,
        Err(e) => {
            errors.push(e);
            return with_errors(errors, input);
        }
    };
    let mut record_errors = Errors::default();
    let additions = validate::record(&record, &mut record_errors);
    if !record_errors.is_empty() {
        // The struct as written, so later uses of it still resolve; no impls, whose bounds
        // would fail again on the same fields.
        errors.append(record_errors);
        return with_errors(errors, &generate::original_struct(&item));
    }
    let struct_item = generate::struct_item(&record, &additions);
    let impls = generate::impls(&record, task_args.as_ref());
    let errors = errors.into_compile_errors();
    quote! {
        #errors
        #struct_item
        #impls
    }
}

fn with_errors(errors: Errors, input: &TokenStream2) -> TokenStream2 {
    let errors = errors.into_compile_errors();
    quote! {
        #errors
        #input
    }
}
