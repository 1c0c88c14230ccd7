//! Task bodies in Rust syntax (`rust = |task, ctx| { .. }`): the supported subset, translated to
//! the CUDA C++ statements a `cuda = ".."` body would be.
//!
//! The closure is also emitted as a Rust function over `&T` and `&mut grosr::body::Ctx`, so rustc
//! checks every name, type and spawned field before NVRTC sees the translation; this module only
//! has to reject what the subset leaves out (each error at its span, saying what is supported)
//! and write C++ with the same meaning. It needs no type inference: arithmetic goes through
//! `grosr::rs` (cuda/grosr_rust.cuh), whose overloads give each operation the type and wrapping
//! Rust gives it, an untyped `let` is `auto`, and math methods map to CUDA's overloads (`x.exp()`
//! is `exp(x)`, `expf` for a `float`). What C++ cannot tell (the type of a lone unsuffixed
//! literal, or of two side by side) is an error asking for a suffix or a type. Every local gets a
//! C name of its own (`x_3`), so Rust's shadowing cannot become a C++ redeclaration.

use proc_macro2::Span;
use syn::spanned::Spanned as _;
use syn::{BinOp, Block, Expr, ExprClosure, Lit, Pat, Stmt, Type, UnOp};

use crate::parse::Granularity;

/// The parsed closure: its two parameters' names and its body.
pub(crate) struct RustBody {
    pub task: syn::Ident,
    pub ctx: syn::Ident,
    pub block: Block,
}

/// What the subset holds, for error messages.
const SUPPORTED: &str = "supported: `let` (with or without a type), assignment and `+=`-style \
    operators, `if`/`else`, `while`, `loop`, `for i in a..b` (and `..=`, `.step_by(s)`), `break`, \
    `continue`, `return`, arithmetic, bit and comparison operators, `as` casts, fixed arrays, \
    record fields, the `ctx` methods of `grosr::body::Ctx`, and `f32`/`f64` math methods";

fn unsupported(span: Span, what: &str) -> syn::Error {
    syn::Error::new(
        span,
        format!("grosr: {what} is not supported in a Rust task body ({SUPPORTED})"),
    )
}

/// Reads `|task, ctx| { .. }` (any two plain names; the block may also be a bare expression).
pub(crate) fn parse(closure: &ExprClosure) -> syn::Result<RustBody> {
    let name = |pat: &Pat| match pat {
        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => Ok(p.ident.clone()),
        Pat::Type(t) => match &*t.pat {
            Pat::Ident(p) => Ok(p.ident.clone()),
            other => Err(syn::Error::new(
                other.span(),
                "grosr: expected a parameter name",
            )),
        },
        other => Err(syn::Error::new(
            other.span(),
            "grosr: expected a parameter name",
        )),
    };
    if closure.inputs.len() != 2 {
        return Err(syn::Error::new(
            closure.inputs.span(),
            "grosr: a Rust task body is a closure of two parameters: `|task, ctx| { .. }`",
        ));
    }
    if let Some(kw) = closure
        .asyncness
        .as_ref()
        .map(|a| a.span)
        .or(closure.movability.as_ref().map(|m| m.span))
        .or(closure.capture.as_ref().map(|c| c.span))
    {
        return Err(unsupported(kw, "this closure keyword"));
    }
    let block = match &*closure.body {
        Expr::Block(b) if b.label.is_none() => b.block.clone(),
        other => syn::parse_quote!({ #other; }),
    };
    Ok(RustBody {
        task: name(&closure.inputs[0])?,
        ctx: name(&closure.inputs[1])?,
        block,
    })
}

/// The body as CUDA C++ statements (the task is `task`, the context `ctx`, as in CUDA bodies).
pub(crate) fn to_cuda(
    body: &RustBody,
    granularity: Granularity,
) -> Result<String, Vec<syn::Error>> {
    let mut w = Writer {
        body,
        granularity,
        returns_value: None,
        out: String::new(),
        errors: Vec::new(),
        depth: 1,
        scopes: vec![Vec::new()],
        arrays: Vec::new(),
        fresh: 0,
    };
    w.block_items(&body.block);
    if w.errors.is_empty() {
        Ok(w.out)
    } else {
        Err(w.errors)
    }
}

/// A `#[grosr::device]` function as a CUDA `__device__` function of the same name: parameters
/// and result of the subset's types, the body in the subset (no `task`), `return` with a value or
/// a tail expression, and the `grosr_call_<name>` template that translated calls go through. A
/// helper of a `granularity` (warp or block) may use that granularity's collectives, and its
/// template checks, at each call, that the caller (a body or helper) has that granularity.
pub(crate) fn device_fn_to_cuda(
    f: &syn::ItemFn,
    granularity: Option<Granularity>,
) -> Result<String, Vec<syn::Error>> {
    let sig = &f.sig;
    let mut errors = Vec::new();
    if !sig.generics.params.is_empty()
        || sig.asyncness.is_some()
        || sig.unsafety.is_some()
        || sig.variadic.is_some()
    {
        errors.push(unsupported(
            sig.span(),
            "a generic, async, unsafe or variadic function",
        ));
        return Err(errors);
    }
    // A parameter of type `&Ctx` / `&mut Ctx` is the context (`ctx` in C); no task. The other
    // name is one no user can write.
    let ctx_param = ctx_param(sig);
    let body = RustBody {
        task: syn::Ident::new("__grosr_no_task", Span::call_site()),
        ctx: ctx_param.unwrap_or_else(|| syn::Ident::new("__grosr_no_ctx", Span::call_site())),
        block: (*f.block).clone(),
    };
    let mut w = Writer {
        body: &body,
        granularity: granularity.unwrap_or(Granularity::Lane),
        returns_value: Some(!matches!(sig.output, syn::ReturnType::Default)),
        out: String::new(),
        errors: Vec::new(),
        depth: 1,
        scopes: vec![Vec::new()],
        arrays: Vec::new(),
        fresh: 0,
    };
    let ret = match &sig.output {
        syn::ReturnType::Default => String::from("void"),
        syn::ReturnType::Type(_, t) => w.c_type(t),
    };
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            syn::FnArg::Typed(t) if is_ctx_type(&t.ty) => {
                params.push(String::from("grosr::Ctx& ctx"))
            }
            syn::FnArg::Typed(t) => match &*t.pat {
                Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                    let ty = w.c_type(&t.ty);
                    let name = w.declare(&p.ident.to_string());
                    params.push(format!("{ty} {name}"));
                }
                other => {
                    w.error(unsupported(other.span(), "this parameter pattern"));
                }
            },
            syn::FnArg::Receiver(r) => {
                w.error(unsupported(r.span(), "`self`"));
            }
        }
    }
    // The statements, a tail expression as the result.
    let stmts = &f.block.stmts;
    for (k, stmt) in stmts.iter().enumerate() {
        match stmt {
            Stmt::Expr(e, None) if k + 1 == stmts.len() && w.returns_value == Some(true) => {
                let v = w.expr(e);
                w.line(&format!("return {v};"));
            }
            other => w.stmt(other),
        }
    }
    if !w.errors.is_empty() {
        return Err(w.errors);
    }
    // The function, under its own name (CUDA code may call it), and the template that Rust
    // bodies and helpers call it through, given their granularity: a granular helper's
    // static_assert fails the build at a call from anything of another granularity.
    let name = &sig.ident;
    let params = params.join(", ");
    let (own, check) = match granularity {
        None => (String::new(), String::new()),
        Some(g) => {
            let gran = g.c_name();
            (
                format!(
                    "    [[maybe_unused]] constexpr grosr::Gran grosr_granularity = grosr::{gran};\n"
                ),
                format!(
                    "    static_assert(grosr_caller == grosr::{gran}, \"grosr: `{name}` \
                     (#[grosr::device(granularity = ..)]) meets its other lanes: call it from a \
                     task or helper of that granularity\");\n"
                ),
            )
        }
    };
    Ok(format!(
        "__device__ __forceinline__ {ret} {name}({params}) {{\n{own}{}}}\n\
         template <grosr::Gran grosr_caller, class... A>\n\
         __device__ __forceinline__ decltype(auto) grosr_call_{name}(A&&... a) {{\n{check}    \
         return {name}(static_cast<A&&>(a)...);\n}}\n",
        w.out
    ))
}

struct Writer<'a> {
    body: &'a RustBody,
    granularity: Granularity,
    /// In a `#[grosr::device]` function: whether `return` may carry a value.
    returns_value: Option<bool>,
    out: String,
    errors: Vec<syn::Error>,
    depth: usize,
    /// Per C block, its locals: (Rust name, C name).
    scopes: Vec<Vec<(String, String)>>,
    /// The C names of the locals that are fixed arrays (a `let` may not copy one whole).
    arrays: Vec<String>,
    fresh: u32,
}

impl Writer<'_> {
    fn line(&mut self, text: &str) {
        for _ in 0..self.depth {
            self.out.push_str("    ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn error(&mut self, e: syn::Error) -> String {
        self.errors.push(e);
        String::from("0")
    }

    fn block_items(&mut self, block: &Block) {
        for stmt in &block.stmts {
            self.stmt(stmt);
        }
    }

    fn nested(&mut self, head: &str, block: &Block) {
        self.line(&format!("{head} {{"));
        self.depth += 1;
        self.scopes.push(Vec::new());
        self.block_items(block);
        self.scopes.pop();
        self.depth -= 1;
        self.line("}");
    }

    /// Declares Rust local `name` in the current C block: a C name of its own (`name_N`), so
    /// that shadowing, a C++ keyword or a name of the generated code cannot clash.
    fn declare(&mut self, name: &str) -> String {
        self.fresh += 1;
        let c = format!("{name}_{}", self.fresh);
        if let Some(scope) = self.scopes.last_mut() {
            scope.push((name.to_string(), c.clone()));
        }
        c
    }

    /// A fresh name for a temporary of the generated code.
    fn temp(&mut self, what: &str) -> String {
        self.fresh += 1;
        format!("grosr_{what}_{}", self.fresh)
    }

    /// The C name of Rust local `name` (the innermost, latest declaration), if it is one.
    fn local_name(&self, name: &str) -> Option<String> {
        self.scopes.iter().rev().find_map(|s| {
            s.iter()
                .rev()
                .find(|(r, _)| r == name)
                .map(|(_, c)| c.clone())
        })
    }

    fn stmt(&mut self, stmt: &Stmt) {
        let attr = match stmt {
            Stmt::Local(l) => l.attrs.first(),
            Stmt::Expr(e, _) => expr_attrs(e).first(),
            _ => None,
        };
        if let Some(a) = attr {
            self.error(unsupported(a.span(), "an attribute (`#[cfg]` and others)"));
            return;
        }
        match stmt {
            Stmt::Local(local) => self.local(local),
            Stmt::Expr(e, _) => self.expr_stmt(e),
            Stmt::Item(item) => {
                self.error(unsupported(item.span(), "an item (fn, struct, use, ..)"));
            }
            Stmt::Macro(m) => {
                self.error(unsupported(m.span(), "a macro call"));
            }
        }
    }

    fn local(&mut self, local: &syn::Local) {
        // `let _ = e;`: evaluated for its effects.
        if let (Pat::Wild(_), Some(init)) = (&local.pat, &local.init) {
            let value = self.expr(&init.expr);
            self.line(&format!("(void)({value});"));
            return;
        }
        let (ident, ty) = match &local.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => (&p.ident, None),
            Pat::Type(t) => match &*t.pat {
                Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                    (&p.ident, Some(&*t.ty))
                }
                other => {
                    self.error(unsupported(other.span(), "a pattern"));
                    return;
                }
            },
            other => {
                self.error(unsupported(other.span(), "a pattern"));
                return;
            }
        };
        let Some(init) = &local.init else {
            self.error(syn::Error::new(
                local.span(),
                "grosr: give a Rust task body's `let` a value (`let x = ..;`)",
            ));
            return;
        };
        if let Some((_, diverge)) = &init.diverge {
            self.error(unsupported(diverge.span(), "`let .. else`"));
            return;
        }
        // A fixed array: `let a = [0u32; 4];` or with a type.
        if let Expr::Repeat(r) = &*init.expr {
            let elem = match ty {
                Some(Type::Array(a)) => self.c_type(&a.elem),
                _ => match &*r.expr {
                    Expr::Lit(l) => literal_type(&l.lit).unwrap_or("auto").to_string(),
                    _ => String::from("auto"),
                },
            };
            if elem == "auto" {
                self.error(syn::Error::new(
                    r.span(),
                    "grosr: give the array's element type (`let a: [u32; 4] = [0; 4];` or `[0u32; 4]`)",
                ));
                return;
            }
            let len = self.expr(&r.len);
            let value = self.expr(&r.expr);
            // The value once, as Rust evaluates it once.
            let (v, i) = (self.temp("v"), self.temp("i"));
            let name = self.declare(&ident.to_string());
            self.arrays.push(name.clone());
            self.line(&format!("const {elem} {v} = {value};"));
            self.line(&format!("{elem} {name}[{len}];"));
            self.line(&format!(
                "for (uint32_t {i} = 0; {i} < ({len}); ++{i}) {name}[{i}] = {v};"
            ));
            return;
        }
        if ty.is_none() && is_bare_literal(&init.expr) {
            self.error(syn::Error::new(
                init.expr.span(),
                "grosr: give this `let` a type, or the literal a suffix (`let x: u64 = 0;`, \
                 `0u64`, `1.5f32`): Rust infers it from later uses, which the translation \
                 cannot see",
            ));
            self.declare(&ident.to_string());
            return;
        }
        // A copy of a whole array: C++ cannot declare one from another (NVRTC's error would
        // come at build, far from here), so the place of the `let` says what to write instead.
        let copies_array = match strip_parens(&init.expr) {
            Expr::Path(p) => p
                .path
                .get_ident()
                .and_then(|i| self.local_name(&i.to_string()))
                .is_some_and(|c| self.arrays.contains(&c)),
            _ => false,
        };
        if copies_array || matches!(ty, Some(Type::Array(_))) {
            self.error(syn::Error::new(
                local.span(),
                "grosr: a `let` that copies a whole array is not supported in a Rust task body: \
                 read its elements where they are needed (`a[i]`), or build the new array with \
                 `[x; N]` and copy element by element",
            ));
            // Declared all the same: its later uses are not errors of their own.
            self.declare(&ident.to_string());
            return;
        }
        // The value first: `let x = x + 1;` reads the older `x`.
        let value = self.expr(&init.expr);
        let name = self.declare(&ident.to_string());
        match ty {
            Some(t) => {
                let c_ty = self.c_type(t);
                self.line(&format!("{c_ty} {name} = {value};"));
            }
            None => self.line(&format!("auto {name} = grosr::rs::let({value});")),
        }
    }

    fn expr_stmt(&mut self, e: &Expr) {
        match e {
            Expr::If(i) => self.if_chain(i, "if"),
            Expr::While(w) => {
                if let Some(l) = &w.label {
                    self.error(unsupported(l.span(), "a loop label"));
                }
                let cond = self.expr(&w.cond);
                self.nested(&format!("while ({cond})"), &w.body);
            }
            Expr::Loop(l) => {
                if let Some(label) = &l.label {
                    self.error(unsupported(label.span(), "a loop label"));
                }
                self.nested("while (true)", &l.body);
            }
            Expr::ForLoop(f) => self.for_loop(f),
            Expr::Break(b) => {
                if b.label.is_some() || b.expr.is_some() {
                    self.error(unsupported(b.span(), "`break` with a label or value"));
                }
                self.line("break;");
            }
            Expr::Continue(c) => {
                if c.label.is_some() {
                    self.error(unsupported(c.span(), "`continue` with a label"));
                }
                self.line("continue;");
            }
            Expr::Return(r) => {
                match (&r.expr, self.returns_value) {
                    (Some(v), Some(true)) => {
                        let v = self.expr(v);
                        self.line(&format!("return {v};"));
                        return;
                    }
                    (Some(v), _) => {
                        self.error(unsupported(
                            v.span(),
                            "a returned value here (a task body returns nothing)",
                        ));
                    }
                    _ => {}
                }
                self.line("return;");
            }
            Expr::Block(b) if b.label.is_none() => self.nested("", &b.block),
            _ => {
                let text = self.expr(e);
                self.line(&format!("{text};"));
            }
        }
    }

    fn if_chain(&mut self, i: &syn::ExprIf, head: &str) {
        if let Expr::Let(l) = &*i.cond {
            self.error(unsupported(l.span(), "`if let`"));
            return;
        }
        let cond = self.expr(&i.cond);
        self.nested(&format!("{head} ({cond})"), &i.then_branch);
        if let Some((_, els)) = &i.else_branch {
            match &**els {
                Expr::If(next) => {
                    // `} else if (..) {`: written as a nested chain, the same in C.
                    self.if_chain(next, "else if");
                }
                Expr::Block(b) => self.nested("else", &b.block),
                other => {
                    self.error(unsupported(other.span(), "this `else`"));
                }
            }
        }
    }

    fn for_loop(&mut self, f: &syn::ExprForLoop) {
        if let Some(l) = &f.label {
            self.error(unsupported(l.span(), "a loop label"));
        }
        let var = match &*f.pat {
            Pat::Ident(p) if p.mutability.is_none() && p.by_ref.is_none() && p.subpat.is_none() => {
                Some(p.ident.to_string())
            }
            Pat::Wild(_) => None,
            other => {
                self.error(unsupported(
                    other.span(),
                    "this `for` pattern (`for i in ..` or `for _ in ..`)",
                ));
                return;
            }
        };
        // `a..b`, `a..=b`, or `(a..b).step_by(s)`.
        let (range, step) = match &*f.expr {
            Expr::MethodCall(m) if m.method == "step_by" && m.args.len() == 1 => {
                (strip_parens(&m.receiver), Some(&m.args[0]))
            }
            other => (other, None),
        };
        let Expr::Range(r) = range else {
            self.error(unsupported(
                f.expr.span(),
                "a `for` over anything but a range (`a..b`, `a..=b`, `(a..b).step_by(s)`)",
            ));
            return;
        };
        let (Some(from), Some(to)) = (&r.start, &r.end) else {
            self.error(unsupported(r.span(), "an open range"));
            return;
        };
        if var.is_some() && is_bare_literal(from) && is_bare_literal(to) {
            self.error(syn::Error::new(
                r.span(),
                "grosr: give a bound a suffix (`0..4u32`): the loop variable's type comes from \
                 its uses, which the translation cannot see",
            ));
            return;
        }
        let closed = matches!(r.limits, syn::RangeLimits::Closed(_));
        let from = self.expr(from);
        let to = self.expr(to);
        let step = step.map_or_else(|| String::from("1"), |s| self.expr(s));
        // Bounds and step evaluated once, as Rust does; the variable takes the bounds' type (Rust
        // infers `u32` for `0..task.n`); `more` says whether another turn comes, decided without
        // stepping past the bound, so `0..=u32::MAX` and large steps end as they do in Rust.
        let (lo, hi, st, more) = (
            self.temp("from"),
            self.temp("to"),
            self.temp("step"),
            self.temp("more"),
        );
        let (first, next) = if closed { ("<=", ">=") } else { ("<", ">") };
        self.line("{");
        self.depth += 1;
        self.line(&format!(
            "typedef grosr::rs::common_t<decltype({from}), decltype({to})> {lo}_t;"
        ));
        self.line(&format!(
            "typedef typename grosr::rs::unsigned_of<{lo}_t>::type {lo}_u;"
        ));
        self.line(&format!("const {lo}_t {lo} = {from}, {hi} = {to};"));
        // The step and the distance left in 64 unsigned bits: no signed overflow, no truncation.
        self.line(&format!("const uint64_t {st} = (uint64_t)({step});"));
        // A zero step stops after the first turn (Rust panics; a GPU cannot).
        self.line(&format!("bool {more} = {lo} {first} {hi};"));
        self.scopes.push(Vec::new());
        let c_var = match &var {
            Some(v) => self.declare(v),
            None => self.temp("i"),
        };
        self.nested(
            &format!(
                "for ({lo}_t {c_var} = {lo}; {more}; \
                 {more} = {st} != 0 && (uint64_t)({lo}_u)(({lo}_u){hi} - ({lo}_u){c_var}) {next} {st}, \
                 {c_var} = {more} ? ({lo}_t)({lo}_u)(({lo}_u){c_var} + ({lo}_u){st}) : {c_var})"
            ),
            &f.body,
        );
        self.scopes.pop();
        self.depth -= 1;
        self.line("}");
    }

    fn c_type(&mut self, ty: &Type) -> String {
        match ty {
            Type::Path(p) if p.qself.is_none() => {
                if let Some(id) = p.path.get_ident() {
                    if let Some(c) = primitive(&id.to_string()) {
                        return c.to_string();
                    }
                    if matches!(id.to_string().as_str(), "char" | "str" | "i128" | "u128") {
                        return self.error(unsupported(ty.span(), "this type"));
                    }
                    // A record or task type: the C struct of the same name.
                    return id.to_string();
                }
                // `DevicePtr<T>` (any path ending so): a `T*`.
                if let Some(last) = p.path.segments.last() {
                    if last.ident == "DevicePtr" {
                        if let syn::PathArguments::AngleBracketed(a) = &last.arguments {
                            if let Some(syn::GenericArgument::Type(inner)) = a.args.first() {
                                return format!("{}*", self.c_type(inner));
                            }
                        }
                    }
                }
                self.error(unsupported(ty.span(), "this type"))
            }
            _ => self.error(unsupported(ty.span(), "this type")),
        }
    }

    fn expr(&mut self, e: &Expr) -> String {
        match e {
            Expr::Lit(l) => match literal(&l.lit, false) {
                Ok(text) => text,
                Err(why) => self.error(syn::Error::new(l.span(), why)),
            },
            Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => match p.path.get_ident() {
                Some(id) => match self.local_name(&id.to_string()) {
                    Some(c) => c,
                    None if *id == self.body.task => String::from("task"),
                    None if *id == self.body.ctx => String::from("ctx"),
                    None => self.error(syn::Error::new(
                        id.span(),
                        format!(
                            "grosr: `{id}` is not a local of this body, `{}` or `{}`: a Rust task \
                             body sees only those (pass other values in the record)",
                            self.body.task, self.body.ctx
                        ),
                    )),
                },
                None => self.error(unsupported(p.span(), "a path")),
            },
            Expr::Paren(p) => format!("({})", self.expr(&p.expr)),
            Expr::Group(g) => self.expr(&g.expr),
            Expr::Field(f) => {
                let base = self.expr(&f.base);
                match &f.member {
                    syn::Member::Named(n) => format!("{base}.{n}"),
                    syn::Member::Unnamed(_) => self.error(unsupported(f.span(), "a tuple field")),
                }
            }
            Expr::Index(i) => {
                let base = self.expr(&i.expr);
                let index = self.expr(&i.index);
                format!("{base}[{index}]")
            }
            Expr::Unary(u) => match u.op {
                // `-5i8`: one literal, so that its minimum fits (`-128i8`).
                UnOp::Neg(_) if matches!(&*u.expr, Expr::Lit(_)) => {
                    let Expr::Lit(l) = &*u.expr else {
                        unreachable!()
                    };
                    match literal(&l.lit, true) {
                        Ok(text) => text,
                        Err(why) => self.error(syn::Error::new(l.span(), why)),
                    }
                }
                UnOp::Neg(_) => format!("grosr::rs::neg({})", self.expr(&u.expr)),
                // Logical for a bool, the complement in its own width for an integer (C++
                // overloads tell them apart).
                UnOp::Not(_) => format!("grosr::rs::not_of({})", self.expr(&u.expr)),
                _ => self.error(unsupported(u.span(), "this operator")),
            },
            Expr::Binary(b) => self.binary(b),
            Expr::Assign(a) => {
                let left = self.expr(&a.left);
                let right = self.expr(&a.right);
                format!("{left} = {right}")
            }
            Expr::Cast(c) => {
                let ty = self.c_type(&c.ty);
                let inner = self.expr(&c.expr);
                // Saturating from a float, as Rust's `as`.
                format!("grosr::rs::cast<{ty}>({inner})")
            }
            Expr::If(i) => self.if_value(i),
            Expr::MethodCall(m) => self.method(m),
            // A `#[grosr::device]` function (rustc checks that it exists and how it is called;
            // the runtime needs it registered: `RuntimeBuilder::helper`).
            Expr::Call(c) if matches!(&*c.func, Expr::Path(p) if p.path.get_ident().is_some()) => {
                let Expr::Path(p) = &*c.func else {
                    unreachable!()
                };
                let name = p
                    .path
                    .get_ident()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let args: Vec<String> = c.args.iter().map(|a| self.expr(a)).collect();
                // Through the helper's template, which checks the caller's granularity (a body
                // and a granular helper declare theirs; others see `GROSR_NO_GRAN`).
                format!("grosr_call_{name}<grosr_granularity>({})", args.join(", "))
            }
            other => {
                let what = match other {
                    Expr::Match(_) => "`match` (use `if`/`else`)",
                    Expr::Closure(_) => "a closure",
                    Expr::Call(_) => "a function call",
                    Expr::Macro(_) => "a macro call",
                    Expr::Reference(_) => "a reference",
                    Expr::Tuple(_) => "a tuple",
                    Expr::Struct(_) => "a struct literal outside `ctx.spawn`",
                    Expr::Array(_) => "an array literal (use `[v; n]`)",
                    _ => "this expression",
                };
                self.error(unsupported(other.span(), what))
            }
        }
    }

    fn binary(&mut self, b: &syn::ExprBinary) -> String {
        // Arithmetic and bit operators through grosr::rs (Rust's types and wrapping); the
        // comparisons and `&&`/`||` mean the same in C.
        let (helper, c_op) = match b.op {
            BinOp::Add(_) | BinOp::AddAssign(_) => ("add", ""),
            BinOp::Sub(_) | BinOp::SubAssign(_) => ("sub", ""),
            BinOp::Mul(_) | BinOp::MulAssign(_) => ("mul", ""),
            BinOp::Div(_) | BinOp::DivAssign(_) => ("div", ""),
            BinOp::Rem(_) | BinOp::RemAssign(_) => ("rem", ""),
            BinOp::BitXor(_) | BinOp::BitXorAssign(_) => ("bit_xor", ""),
            BinOp::BitAnd(_) | BinOp::BitAndAssign(_) => ("bit_and", ""),
            BinOp::BitOr(_) | BinOp::BitOrAssign(_) => ("bit_or", ""),
            BinOp::Shl(_) | BinOp::ShlAssign(_) => ("shl", ""),
            BinOp::Shr(_) | BinOp::ShrAssign(_) => ("shr", ""),
            BinOp::And(_) => ("", "&&"),
            BinOp::Or(_) => ("", "||"),
            // In the common type too: `x == 0.1` for a float `x` compares floats.
            BinOp::Eq(_) => ("eq", ""),
            BinOp::Lt(_) => ("lt", ""),
            BinOp::Le(_) => ("le", ""),
            BinOp::Ne(_) => ("ne", ""),
            BinOp::Ge(_) => ("ge", ""),
            BinOp::Gt(_) => ("gt", ""),
            _ => return self.error(unsupported(b.span(), "this operator")),
        };
        // Where C++ cannot tell the type Rust infers: two unsuffixed literals, or one shifted.
        let shift = matches!(helper, "shl" | "shr");
        if is_bare_literal(&b.left) && (shift || is_bare_literal(&b.right)) {
            return self.error(syn::Error::new(
                b.left.span(),
                "grosr: give this literal a suffix (`1u64 << 40`, `65536u64 * 65536`): Rust \
                 infers its type from elsewhere, which the translation cannot see",
            ));
        }
        let left = self.expr(&b.left);
        let right = self.expr(&b.right);
        let assign = matches!(
            b.op,
            BinOp::AddAssign(_)
                | BinOp::SubAssign(_)
                | BinOp::MulAssign(_)
                | BinOp::DivAssign(_)
                | BinOp::RemAssign(_)
                | BinOp::BitXorAssign(_)
                | BinOp::BitAndAssign(_)
                | BinOp::BitOrAssign(_)
                | BinOp::ShlAssign(_)
                | BinOp::ShrAssign(_)
        );
        if helper.is_empty() {
            format!("({left} {c_op} {right})")
        } else if assign && self.calls_anything(&b.right) {
            // The place evaluated once (`a[f()] += 1`), after the value, as Rust orders them:
            // `op_to(place) = value`, whose right side C++17 evaluates first.
            format!("(grosr::rs::{helper}_to({left}) = ({right}))")
        } else if assign {
            // A value that calls nothing reads the same before or after the place: the plain
            // helper, whose code NVVM has compiled all along (the ordered form changed the BFS
            // twins' SASS, unmeasured on a GPU).
            format!("grosr::rs::{helper}_assign({left}, {right})")
        } else {
            format!("grosr::rs::{helper}({left}, {right})")
        }
    }

    /// Whether `e` may have an effect another expression could see, or see one: a helper call
    /// or a `ctx` method (a read, an atomic, a spawn); arithmetic, casts, fields, indexing and
    /// other methods (math on values) have none. Anything else counts as a call.
    fn calls_anything(&self, e: &Expr) -> bool {
        match e {
            Expr::Lit(_) | Expr::Path(_) => false,
            Expr::Paren(p) => self.calls_anything(&p.expr),
            Expr::Group(g) => self.calls_anything(&g.expr),
            Expr::Unary(u) => self.calls_anything(&u.expr),
            Expr::Cast(c) => self.calls_anything(&c.expr),
            Expr::Field(f) => self.calls_anything(&f.base),
            Expr::Index(i) => self.calls_anything(&i.expr) || self.calls_anything(&i.index),
            Expr::Binary(b) => self.calls_anything(&b.left) || self.calls_anything(&b.right),
            Expr::MethodCall(m) => {
                matches!(&*m.receiver, Expr::Path(p) if p.path.is_ident(&self.body.ctx))
                    || self.calls_anything(&m.receiver)
                    || m.args.iter().any(|a| self.calls_anything(a))
            }
            _ => true,
        }
    }

    /// `if c { a } else { b }` as a value: each branch one expression.
    fn if_value(&mut self, i: &syn::ExprIf) -> String {
        let single = |b: &Block| match b.stmts.as_slice() {
            [Stmt::Expr(e, None)] => Some(e.clone()),
            _ => None,
        };
        let (Some(then), Some((_, els))) = (single(&i.then_branch), &i.else_branch) else {
            return self.error(unsupported(
                i.span(),
                "an `if` used as a value other than `if c { a } else { b }`",
            ));
        };
        let els = match &**els {
            Expr::Block(b) => single(&b.block),
            Expr::If(_) => Some((**els).clone()),
            _ => None,
        };
        let Some(els) = els else {
            return self.error(unsupported(i.span(), "this `else` in a value"));
        };
        let cond = self.expr(&i.cond);
        let then = self.expr(&then);
        let els = self.expr(&els);
        // Both branches in their common type (a literal takes the other's), as Rust types it.
        format!(
            "(({cond}) ? (grosr::rs::common_t<decltype({then}), decltype({els})>)({then}) \
             : (grosr::rs::common_t<decltype({then}), decltype({els})>)({els}))"
        )
    }

    fn args(&mut self, m: &syn::ExprMethodCall) -> Vec<String> {
        m.args.iter().map(|a| self.expr(a)).collect()
    }

    fn method(&mut self, m: &syn::ExprMethodCall) -> String {
        let name = m.method.to_string();
        let on_ctx = matches!(&*m.receiver, Expr::Path(p) if p.path.is_ident(&self.body.ctx));
        if m.turbofish.is_some() && !(on_ctx && matches!(name.as_str(), "alloc" | "warp_shared")) {
            return self.error(unsupported(m.span(), "a turbofish"));
        }
        if on_ctx {
            return self.ctx_method(m, &name);
        }
        let receiver = self.expr(&m.receiver);
        let args = self.args(m);
        let call = |f: &str, args: &[String]| {
            let mut all = vec![receiver.clone()];
            all.extend_from_slice(args);
            format!("{f}({})", all.join(", "))
        };
        // f32 / f64 (and integer max/min): CUDA's C++ overloads pick the precision.
        match (name.as_str(), args.len()) {
            ("abs", 0) => call("grosr::rs::abs_of", &args),
            (
                "sqrt" | "exp" | "exp2" | "sin" | "cos" | "tan" | "floor" | "ceil" | "round"
                | "trunc" | "tanh" | "cbrt",
                0,
            ) => call(&name, &args),
            ("ln", 0) => call("log", &args),
            ("log2", 0) => call("log2", &args),
            ("log10", 0) => call("log10", &args),
            ("recip", 0) => format!("(1 / ({receiver}))"),
            ("max", 1) => call("grosr::rs::max_of", &args),
            ("min", 1) => call("grosr::rs::min_of", &args),
            // In the receiver's type: an unsuffixed literal argument is a C `double`, which
            // would make a `float`'s `pow` / `fma` ambiguous (`powi`'s `int` is not).
            ("powf", 1) => call("grosr::rs::powf_of", &args),
            ("powi", 1) => call("pow", &args),
            ("mul_add", 2) => call("grosr::rs::mul_add_of", &args),
            ("wrapping_add", 1) => call("grosr::rs::add", &args),
            ("wrapping_sub", 1) => call("grosr::rs::sub", &args),
            ("wrapping_mul", 1) => call("grosr::rs::mul", &args),
            ("count_ones", 0) => call("grosr::rs::count_ones", &args),
            ("div_ceil", 1) => call("grosr::rs::div_ceil", &args),
            // A `DevicePtr`'s (a pointer in C).
            ("is_null", 0) => format!("(({receiver}) == nullptr)"),
            ("addr", 0) => format!("((uint64_t)({receiver}))"),
            // `DevicePtr::add`: `count` elements on, wrapping (C pointer arithmetic in 64 bits).
            // Through a template over pointers: the translation has no types, and `x.add(y)` of
            // a number (`std::ops::Add` in scope) must fail the build, not offset a pointer.
            ("add", 1) => call("grosr::rs::ptr_add", &args),
            _ => self.error(unsupported(
                m.method.span(),
                &format!("the method `{name}`"),
            )),
        }
    }

    fn ctx_method(&mut self, m: &syn::ExprMethodCall, name: &str) -> String {
        // `ctx.spawn(T { .. })`: fields by name, so a reordered struct keeps its meaning.
        if name == "spawn" || name == "spawn_queued" {
            return self.spawn(m, name);
        }
        // `ctx.alloc::<T>(n)`: the element type is the turbofish's (nothing here infers it).
        if name == "alloc" {
            let ty = match &m.turbofish {
                Some(t) if t.args.len() == 1 => match t.args.first() {
                    Some(syn::GenericArgument::Type(ty)) => ty.clone(),
                    _ => return self.error(unsupported(t.span(), "this turbofish")),
                },
                _ => {
                    return self.error(syn::Error::new(
                        m.method.span(),
                        "grosr: name the element type: `ctx.alloc::<T>(n)`",
                    ));
                }
            };
            let elem = self.c_type(&ty);
            let args = self.args(m);
            if args.len() != 1 {
                return self.error(unsupported(m.span(), "`alloc` with these arguments"));
            }
            return format!("ctx.alloc_n<{elem}>({})", args[0]);
        }
        // Collectives need the granularity that has their threads: a full warp's mask in a lane
        // task, or a barrier outside a block task, would hang or be undefined.
        let needs = match name {
            "warp_sum" | "warp_max" | "warp_min" | "ballot" | "any" | "all" | "shuffle"
            | "shuffle_xor" | "shuffle_up" | "shuffle_down" | "sync_warp" | "warp_shared" => {
                Some((Granularity::Warp, "warp"))
            }
            "sync_threads" => Some((Granularity::Block, "block")),
            _ => None,
        };
        if let Some((g, what)) = needs {
            if !matches!(
                (g, self.granularity),
                (Granularity::Warp, Granularity::Warp) | (Granularity::Block, Granularity::Block)
            ) {
                return self.error(syn::Error::new(
                    m.method.span(),
                    format!(
                        "grosr: `{}.{name}` is for {what} tasks (`granularity = \"{what}\"`)",
                        self.body.ctx
                    ),
                ));
            }
        }
        if name == "warp_shared" {
            return self.warp_shared(m);
        }
        let args = self.args(m);
        let a = |i: usize| args.get(i).cloned().unwrap_or_default();
        match (name, args.len()) {
            ("lane", 0) => String::from("ctx.lane()"),
            ("width", 0) => String::from("ctx.width()"),
            ("index", 0) => String::from("ctx.index()"),
            ("fail", 1) => format!("ctx.fail({})", a(0)),
            ("cancelled", 0) => String::from("ctx.cancelled()"),
            ("read", 2) => format!("({})[{}]", a(0), a(1)),
            ("read_volatile", 2) => format!("grosr::rs::read_volatile(&({})[{}])", a(0), a(1)),
            ("write", 3) => format!("(({})[{}] = ({}))", a(0), a(1), a(2)),
            ("atomic_add", 3) => format!("atomicAdd(&({})[{}], {})", a(0), a(1), a(2)),
            ("atomic_min", 3) => format!("atomicMin(&({})[{}], {})", a(0), a(1), a(2)),
            ("atomic_max", 3) => format!("atomicMax(&({})[{}], {})", a(0), a(1), a(2)),
            ("atomic_exchange", 3) => format!("atomicExch(&({})[{}], {})", a(0), a(1), a(2)),
            ("atomic_cas", 4) => {
                format!("atomicCAS(&({})[{}], {}, {})", a(0), a(1), a(2), a(3))
            }
            ("warp_sum", 1) => format!("grosr::warp_sum({})", a(0)),
            ("warp_max", 1) => format!("grosr::warp_max({})", a(0)),
            ("warp_min", 1) => format!("grosr::warp_min({})", a(0)),
            ("ballot", 1) => format!("__ballot_sync(0xffffffffu, {})", a(0)),
            // `bool`, as in Rust (the intrinsics return an `int`, whose `!` would be `~`).
            ("any", 1) => format!("(__any_sync(0xffffffffu, {}) != 0)", a(0)),
            ("all", 1) => format!("(__all_sync(0xffffffffu, {}) != 0)", a(0)),
            ("shuffle", 2) => format!("__shfl_sync(0xffffffffu, {}, {})", a(0), a(1)),
            ("shuffle_xor", 2) => format!("__shfl_xor_sync(0xffffffffu, {}, {})", a(0), a(1)),
            ("shuffle_up", 2) => format!("__shfl_up_sync(0xffffffffu, {}, {})", a(0), a(1)),
            ("shuffle_down", 2) => format!("__shfl_down_sync(0xffffffffu, {}, {})", a(0), a(1)),
            ("sync_warp", 0) => String::from("__syncwarp()"),
            ("sync_threads", 0) => String::from("__syncthreads()"),
            ("free", 1) => format!("ctx.free({})", a(0)),
            ("globaltimer", 0) => String::from("grosr::globaltimer()"),
            _ => self.error(unsupported(
                m.method.span(),
                &format!("`{}.{name}` with these arguments", self.body.ctx),
            )),
        }
    }

    /// `ctx.warp_shared::<T, N>()`: a `__shared__` array of a row of `N` per warp of the block,
    /// declared before the statement that asks for it; this warp's row.
    fn warp_shared(&mut self, m: &syn::ExprMethodCall) -> String {
        let generic = m.turbofish.as_ref().and_then(|t| {
            let mut it = t.args.iter();
            match (it.next(), it.next(), it.next()) {
                (Some(syn::GenericArgument::Type(ty)), Some(len), None) => Some((ty, len)),
                _ => None,
            }
        });
        let Some((ty, len)) = generic.filter(|_| m.args.is_empty()) else {
            return self.error(syn::Error::new(
                m.span(),
                "grosr: name the element type and the length: `ctx.warp_shared::<u32, 64>()`",
            ));
        };
        let len = match len {
            syn::GenericArgument::Const(Expr::Lit(syn::ExprLit {
                lit: Lit::Int(n), ..
            })) => n.base10_parse::<u32>().ok(),
            _ => None,
        };
        let Some(len) = len.filter(|n| *n > 0) else {
            return self.error(syn::Error::new(
                m.span(),
                "grosr: the length of `warp_shared` is a positive integer literal",
            ));
        };
        let elem = self.c_type(ty);
        let name = self.temp("warp_shared");
        self.line(&format!(
            "__shared__ {elem} {name}[grosr::WARPS_PER_BLOCK][{len}];"
        ));
        format!("(&{name}[threadIdx.x / 32u][0])")
    }

    /// `ctx.spawn(T { .. })` or `ctx.spawn_queued(T { .. })`.
    fn spawn(&mut self, m: &syn::ExprMethodCall, method: &str) -> String {
        let Some(Expr::Struct(s)) = m.args.first().filter(|_| m.args.len() == 1) else {
            return self.error(syn::Error::new(
                m.args.span(),
                "grosr: spawn a struct literal: `ctx.spawn(Child { a: .., b: .. })`",
            ));
        };
        if let Some(rest) = &s.rest {
            return self.error(unsupported(rest.span(), "`..` in a spawned record"));
        }
        let Some(ty) = s.path.get_ident() else {
            return self.error(unsupported(s.path.span(), "a spawned type given by a path"));
        };
        // Fields set by name in a lambda: the order of the Rust literal, whatever the struct's
        // (a designated initialiser would need the struct's order).
        // `spawn_queued` names `grosr_spawn_T` too (a discarded expression), so a type that is not
        // registered is the same build error as for `spawn`.
        let mut text = if method == "spawn" {
            format!("grosr_spawn_{ty}(ctx, [&]() {{ {ty} grosr_r{{}}; ")
        } else {
            format!(
                "(static_cast<void>(grosr_spawn_{ty}), ctx.{method}([&]() {{ {ty} grosr_r{{}}; "
            )
        };
        for f in &s.fields {
            let syn::Member::Named(name) = &f.member else {
                return self.error(unsupported(f.span(), "a tuple field"));
            };
            let value = self.expr(&f.expr);
            text.push_str(&format!("grosr::rs::set(grosr_r.{name}, {value}); "));
        }
        text.push_str("return grosr_r; }())");
        if method != "spawn" {
            text.push(')');
        }
        text
    }
}

/// `&Ctx` or `&mut Ctx` (any path ending in `Ctx`): a helper's context parameter.
/// The name of a `#[grosr::device]` function's `&Ctx` / `&mut Ctx` parameter, if it has one.
pub(crate) fn ctx_param(sig: &syn::Signature) -> Option<syn::Ident> {
    sig.inputs.iter().find_map(|input| match input {
        syn::FnArg::Typed(t) if is_ctx_type(&t.ty) => match &*t.pat {
            Pat::Ident(p) => Some(p.ident.clone()),
            _ => None,
        },
        _ => None,
    })
}

fn is_ctx_type(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => {
            matches!(&*r.elem, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Ctx"))
        }
        _ => false,
    }
}

fn strip_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => strip_parens(&p.expr),
        other => other,
    }
}

/// The C type of a primitive Rust type.
fn primitive(name: &str) -> Option<&'static str> {
    Some(match name {
        "u8" => "uint8_t",
        "u16" => "uint16_t",
        "u32" => "uint32_t",
        "u64" => "uint64_t",
        "i8" => "int8_t",
        "i16" => "int16_t",
        "i32" => "int32_t",
        "i64" => "int64_t",
        "f32" => "float",
        "f64" => "double",
        "bool" => "bool",
        // Rust indexes arrays with usize: bodies cast to it.
        "usize" => "uint64_t",
        "isize" => "int64_t",
        _ => return None,
    })
}

/// A literal's C type, when its suffix says.
fn literal_type(lit: &Lit) -> Option<&'static str> {
    match lit {
        Lit::Int(i) => primitive(i.suffix()),
        Lit::Float(f) => primitive(f.suffix()),
        Lit::Bool(_) => Some("bool"),
        _ => None,
    }
}

/// A literal in C (`negative`: with a minus in front). A suffix becomes a cast, exact for every
/// width; an unsuffixed integer stays a C `int`, an unsuffixed float a `double`, both of which
/// `grosr::rs` gives the other operand's type, as Rust infers it. An unsuffixed integer beyond
/// `i32` must say its type.
fn literal(lit: &Lit, negative: bool) -> Result<String, String> {
    let minus = if negative { "-" } else { "" };
    match lit {
        Lit::Int(i) => {
            let digits = i.base10_digits();
            match i.suffix() {
                "" => {
                    if digits
                        .parse::<i64>()
                        .map_or(true, |v| v > i64::from(i32::MAX))
                    {
                        return Err(format!(
                            "grosr: give {digits} a suffix (`{digits}u32`, `{digits}u64`, ..): \
                             unsuffixed, it is a C `int` in the translation"
                        ));
                    }
                    Ok(format!("{minus}{digits}"))
                }
                // Through `unsigned long long`, which holds every value's bits (the minus as a
                // wrapping subtraction: `-128i8`, `i64::MIN` alike).
                s => match primitive(s) {
                    Some(t) if negative => Ok(format!("(({t})(0ull - {digits}ull))")),
                    Some(t) => Ok(format!("(({t})({digits}ull))")),
                    None => Err(format!("grosr: the suffix `{s}` is not supported")),
                },
            }
        }
        Lit::Float(f) => {
            let digits = f.base10_digits();
            let digits = if digits.contains(['.', 'e', 'E']) {
                digits.to_string()
            } else {
                format!("{digits}.0")
            };
            match f.suffix() {
                "" | "f64" => Ok(format!("{minus}{digits}")),
                "f32" => Ok(format!("{minus}{digits}f")),
                s => Err(format!("grosr: the suffix `{s}` is not supported")),
            }
        }
        Lit::Bool(b) if !negative => Ok(if b.value { "true" } else { "false" }.to_string()),
        _ => Err(format!(
            "grosr: this literal is not supported in a Rust task body ({SUPPORTED})"
        )),
    }
}

/// An unsuffixed integer or float literal (with or without a minus): a type Rust infers.
fn is_bare_literal(e: &Expr) -> bool {
    match e {
        Expr::Lit(l) => match &l.lit {
            Lit::Int(i) => i.suffix().is_empty(),
            Lit::Float(f) => f.suffix().is_empty(),
            _ => false,
        },
        Expr::Unary(u) => is_bare_literal(&u.expr),
        Expr::Paren(p) => is_bare_literal(&p.expr),
        // `if c { 1 } else { 2 }`: as untyped as its branches.
        Expr::If(i) => {
            let last = |b: &Block| match b.stmts.last() {
                Some(Stmt::Expr(e, None)) => is_bare_literal(e),
                _ => false,
            };
            last(&i.then_branch)
                && i.else_branch.as_ref().is_some_and(|(_, e)| match &**e {
                    Expr::Block(b) => last(&b.block),
                    other => is_bare_literal(other),
                })
        }
        _ => false,
    }
}

/// The attributes of the expressions that can be statements.
fn expr_attrs(e: &Expr) -> &[syn::Attribute] {
    match e {
        Expr::Assign(x) => &x.attrs,
        Expr::Binary(x) => &x.attrs,
        Expr::Block(x) => &x.attrs,
        Expr::Break(x) => &x.attrs,
        Expr::Continue(x) => &x.attrs,
        Expr::ForLoop(x) => &x.attrs,
        Expr::If(x) => &x.attrs,
        Expr::Loop(x) => &x.attrs,
        Expr::MethodCall(x) => &x.attrs,
        Expr::Return(x) => &x.attrs,
        Expr::While(x) => &x.attrs,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cuda_as(closure: &str, granularity: Granularity) -> Result<String, String> {
        let c: ExprClosure = syn::parse_str(closure).expect("a closure");
        let body = parse(&c).map_err(|e| e.to_string())?;
        to_cuda(&body, granularity).map_err(|e| {
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    fn cuda(closure: &str) -> Result<String, String> {
        cuda_as(closure, Granularity::Warp)
    }

    #[test]
    fn a_let_that_copies_a_whole_array_is_refused_at_its_place() {
        for body in [
            "|t, ctx| { let a = [0u32; 4]; let b = a; }",
            "|t, ctx| { let a = [0u32; 4]; let b = (a); }",
            "|t, ctx| { let b: [u32; 4] = t.words; }",
        ] {
            let e = cuda_as(body, Granularity::Lane).unwrap_err();
            assert!(e.contains("copies a whole array"), "{body}: {e}");
        }
        // Its elements, and a scalar local of the same name in another block, are fine.
        cuda_as(
            "|t, ctx| { let a = [0u32; 4]; let x = a[1]; { let a = 2u32; let y = a; } }",
            Granularity::Lane,
        )
        .unwrap();
    }

    #[test]
    fn heap_memory_is_allocated_by_its_written_type_checked_for_null_and_freed() {
        let c = cuda_as(
            "|t, ctx| { let p = ctx.alloc::<f32>(t.n); \
             if p.is_null() { return; } ctx.write(p, 0u32, 1.5f32); ctx.free(p); }",
            Granularity::Lane,
        )
        .unwrap();
        assert!(c.contains("ctx.alloc_n<float>(task.n)"), "{c}");
        assert!(c.contains("== nullptr"), "{c}");
        assert!(c.contains("ctx.free(p_1)"), "{c}");
        let c = cuda_as(
            "|t, ctx| { let p = ctx.alloc::<u32>(t.n); let a = p.addr() & 15; }",
            Granularity::Lane,
        )
        .unwrap();
        assert!(c.contains("((uint64_t)(p_1))"), "{c}");
        let e = cuda_as("|t, ctx| { let p = ctx.alloc(t.n); }", Granularity::Lane).unwrap_err();
        assert!(e.contains("ctx.alloc::<T>(n)"), "{e}");
        let e = cuda_as(
            "|t, ctx| { let x = t.n.max::<u32>(1u32); }",
            Granularity::Lane,
        )
        .unwrap_err();
        assert!(e.contains("turbofish"), "{e}");
    }

    #[test]
    fn a_loop_over_a_warp_s_lanes_reads_fields_and_writes_through_a_pointer() {
        let c = cuda(
            "|t, ctx| { let mut m = 0.0f32; \
             for i in (ctx.lane()..t.n).step_by(32) { m = m.max(ctx.read(t.x, i)); } \
             m = ctx.warp_max(m); \
             if ctx.lane() == 0 { ctx.write(t.y, t.row, m.exp()); } }",
        )
        .unwrap();
        assert!(
            c.starts_with("    auto m_1 = grosr::rs::let(0.0f);\n"),
            "{c}"
        );
        // Bounds and step once, in the bounds' common type, stepping without overflow.
        assert!(
            c.contains(
                "typedef grosr::rs::common_t<decltype(ctx.lane()), decltype(task.n)> grosr_from_2_t;"
            ),
            "{c}"
        );
        assert!(
            c.contains("const grosr_from_2_t grosr_from_2 = ctx.lane(), grosr_to_3 = task.n;"),
            "{c}"
        );
        assert!(
            c.contains(
                "for (grosr_from_2_t i_6 = grosr_from_2; grosr_more_5; grosr_more_5 = \
                 grosr_step_4 != 0 && (uint64_t)(grosr_from_2_u)((grosr_from_2_u)grosr_to_3 - \
                 (grosr_from_2_u)i_6) > grosr_step_4, i_6 = grosr_more_5 ? \
                 (grosr_from_2_t)(grosr_from_2_u)((grosr_from_2_u)i_6 + \
                 (grosr_from_2_u)grosr_step_4) : i_6) {"
            ),
            "{c}"
        );
        assert!(
            c.contains("m_1 = grosr::rs::max_of(m_1, (task.x)[i_6]);"),
            "{c}"
        );
        assert!(c.contains("m_1 = grosr::warp_max(m_1);"), "{c}");
        assert!(c.contains("((task.y)[task.row] = (exp(m_1)));"), "{c}");
    }

    #[test]
    fn spawns_set_fields_by_name_and_literals_keep_their_width() {
        let c = cuda(
            "|task, ctx| { if task.n > 1 { ctx.spawn(Fib { n: task.n - 1, out: task.out }); } \
             else { ctx.atomic_add(task.out, 0u32, task.n as u32); } }",
        )
        .unwrap();
        assert!(
            c.contains(
                "grosr_spawn_Fib(ctx, [&]() { Fib grosr_r{}; \
                 grosr::rs::set(grosr_r.n, grosr::rs::sub(task.n, 1)); \
                 grosr::rs::set(grosr_r.out, task.out); return grosr_r; }());"
            ),
            "{c}"
        );
        assert!(
            c.contains(
                "atomicAdd(&(task.out)[((uint32_t)(0ull))], grosr::rs::cast<uint32_t>(task.n));"
            ),
            "{c}"
        );
        assert!(c.contains("else {"), "{c}");
    }

    #[test]
    fn not_shifts_and_arithmetic_go_through_the_rust_helpers() {
        let c = cuda(
            "|t, c| { let a: u32 = !t.mask; let b = !(t.n < 3); let s = t.x << 3; \
             let d = -128i8; let e = -t.v; }",
        )
        .unwrap();
        assert!(
            c.contains("uint32_t a_1 = grosr::rs::not_of(task.mask);"),
            "{c}"
        );
        assert!(
            c.contains("auto b_2 = grosr::rs::let(grosr::rs::not_of((grosr::rs::lt(task.n, 3))));"),
            "{c}"
        );
        assert!(
            c.contains("auto s_3 = grosr::rs::let(grosr::rs::shl(task.x, 3));"),
            "{c}"
        );
        assert!(
            c.contains("auto d_4 = grosr::rs::let(((int8_t)(0ull - 128ull)));"),
            "{c}"
        );
        assert!(
            c.contains("auto e_5 = grosr::rs::let(grosr::rs::neg(task.v));"),
            "{c}"
        );
    }

    #[test]
    fn every_local_gets_its_own_c_name_so_shadowing_reads_the_right_one() {
        let c = cuda(
            "|t, c| { let x = t.n; let x = x + 1u32; if x > 2 { let x: u32 = x * 2; c.fail(x); } \
             for x in 0..x { c.fail(x); } c.fail(x); }",
        )
        .unwrap();
        assert!(c.contains("auto x_1 = grosr::rs::let(task.n);"), "{c}");
        assert!(
            c.contains("auto x_2 = grosr::rs::let(grosr::rs::add(x_1, ((uint32_t)(1ull))));"),
            "{c}"
        );
        assert!(c.contains("uint32_t x_3 = grosr::rs::mul(x_2, 2);"), "{c}");
        assert!(c.contains("ctx.fail(x_3);"), "{c}");
        // The loop's bound is the outer `x`, read before the loop's own `x` exists.
        assert!(c.contains("grosr_from_4 = 0, grosr_to_5 = x_2;"), "{c}");
        assert!(c.ends_with("    ctx.fail(x_2);\n"), "{c}");
    }

    #[test]
    fn what_the_translation_cannot_type_asks_for_a_suffix_or_a_type() {
        for (body, what) in [
            ("|t, c| { let x = 0; }", "give this `let` a type"),
            (
                "|t, c| { let m: u64 = t.m & (1 << t.k); }",
                "give this literal a suffix",
            ),
            (
                "|t, c| { let m: u64 = 65536 * 65536; }",
                "give this literal a suffix",
            ),
            (
                "|t, c| { let m: u64 = t.m + 4294967296; }",
                "give 4294967296 a suffix",
            ),
        ] {
            let e = cuda(body).unwrap_err();
            assert!(e.contains(what), "{body}: {e}");
        }
    }

    #[test]
    fn a_device_function_translates_with_its_parameters_and_tail_result() {
        let f: syn::ItemFn = syn::parse_str(
            "fn blend(a: f32, b: f32, w: f32) -> f32 { let d = b - a; if w < 0.0 { return a; } a + d * w }",
        )
        .unwrap();
        let c = device_fn_to_cuda(&f, None).unwrap();
        assert!(
            c.starts_with(
                "__device__ __forceinline__ float blend(float a_1, float b_2, float w_3) {\n"
            ),
            "{c}"
        );
        assert!(
            c.contains("auto d_4 = grosr::rs::let(grosr::rs::sub(b_2, a_1));"),
            "{c}"
        );
        assert!(c.contains("return a_1;"), "{c}");
        assert!(
            c.contains("    return grosr::rs::add(a_1, grosr::rs::mul(d_4, w_3));\n}\n"),
            "{c}"
        );
        // A plain helper's template passes any caller.
        assert!(
            c.ends_with(
                "decltype(auto) grosr_call_blend(A&&... a) {\n    \
                 return blend(static_cast<A&&>(a)...);\n}\n"
            ),
            "{c}"
        );
        let body = cuda("|t, c| { c.fail(blend(t.a, t.b, 0.5) as i32); }").unwrap();
        assert!(
            body.contains(
                "ctx.fail(grosr::rs::cast<int32_t>(grosr_call_blend<grosr_granularity>(task.a, \
                 task.b, 0.5)));"
            ),
            "{body}"
        );
        let f: syn::ItemFn = syn::parse_str("fn bad(x: u32) -> u32 { c.lane() }").unwrap();
        assert!(device_fn_to_cuda(&f, None).is_err());
    }

    #[test]
    fn warp_scratch_shuffles_queued_spawns_and_bit_counts_translate() {
        let c = cuda(
            "|t, c| { let buf = c.warp_shared::<u32, 64>(); \
             let x = c.shuffle_up(t.n, 1u32) + c.shuffle_down(t.n, 2u32); \
             c.write(buf, c.lane(), x.count_ones() + x.div_ceil(9u32)); c.sync_warp(); \
             let v = c.read_volatile(t.p, 0u32); \
             c.spawn_queued(Leaf { n: v, pad: 0 }); }",
        )
        .unwrap();
        for want in [
            "__shared__ uint32_t grosr_warp_shared_1[grosr::WARPS_PER_BLOCK][64];\n    \
             auto buf_2 = grosr::rs::let((&grosr_warp_shared_1[threadIdx.x / 32u][0]));",
            "__shfl_up_sync(0xffffffffu, task.n, ((uint32_t)(1ull)))",
            "__shfl_down_sync(0xffffffffu, task.n, ((uint32_t)(2ull)))",
            "grosr::rs::add(grosr::rs::count_ones(x_3), grosr::rs::div_ceil(x_3, ((uint32_t)(9ull))))",
            "__syncwarp();",
            "grosr::rs::read_volatile(&(task.p)[((uint32_t)(0ull))])",
            "(static_cast<void>(grosr_spawn_Leaf), ctx.spawn_queued([&]() { Leaf grosr_r{}; \
             grosr::rs::set(grosr_r.n, v_4); grosr::rs::set(grosr_r.pad, 0); return grosr_r; }()));",
        ] {
            assert!(c.contains(want), "{want}\n  not in\n{c}");
        }
        for (body, why) in [
            (
                "|t, c| { let b = c.warp_shared::<u32>(); }",
                "the element type and the length",
            ),
            (
                "|t, c| { let b = c.warp_shared::<u32, 0>(); }",
                "a positive integer literal",
            ),
        ] {
            let e = cuda(body).unwrap_err();
            assert!(e.contains(why), "{body}: {e}");
        }
        let e = cuda_as("|t, c| { c.sync_warp(); }", Granularity::Block).unwrap_err();
        assert!(e.contains("`c.sync_warp` is for warp tasks"), "{e}");
    }

    #[test]
    fn a_warp_helper_checks_its_callers_granularity_at_each_call() {
        let f: syn::ItemFn =
            syn::parse_str("fn total(ctx: &mut Ctx, x: f32) -> f32 { ctx.warp_sum(x) }").unwrap();
        let e = device_fn_to_cuda(&f, None).unwrap_err();
        assert!(e[0].to_string().contains("is for warp tasks"), "{}", e[0]);
        let c = device_fn_to_cuda(&f, Some(Granularity::Warp)).unwrap();
        assert!(
            c.starts_with(
                "__device__ __forceinline__ float total(grosr::Ctx& ctx, float x_1) {\n    \
                 [[maybe_unused]] constexpr grosr::Gran grosr_granularity = grosr::GROSR_WARP;\n"
            ),
            "{c}"
        );
        assert!(
            c.ends_with(
                "template <grosr::Gran grosr_caller, class... A>\n__device__ __forceinline__ \
                 decltype(auto) grosr_call_total(A&&... a) {\n    static_assert(grosr_caller == \
                 grosr::GROSR_WARP, \"grosr: `total` (#[grosr::device(granularity = ..)]) meets \
                 its other lanes: call it from a task or helper of that granularity\");\n    \
                 return total(static_cast<A&&>(a)...);\n}\n"
            ),
            "{c}"
        );
    }

    #[test]
    fn collectives_and_barriers_need_their_granularity() {
        let e = cuda_as("|t, c| { let s = c.warp_sum(t.x); }", Granularity::Lane).unwrap_err();
        assert!(e.contains("`c.warp_sum` is for warp tasks"), "{e}");
        let e = cuda_as("|t, c| { c.sync_threads(); }", Granularity::Warp).unwrap_err();
        assert!(e.contains("`c.sync_threads` is for block tasks"), "{e}");
        assert!(cuda_as("|t, c| { c.sync_threads(); }", Granularity::Block).is_ok());
    }

    #[test]
    fn unsupported_syntax_is_an_error_naming_it() {
        for (body, what) in [
            ("|t, c| { match t.n { _ => {} } }", "`match`"),
            ("|t, c| { 'a: loop { break 'a; } }", "a loop label"),
            ("|t, c| { let v = vec![1]; }", "a macro call"),
            (
                "|t, c| { for x in t.items { } }",
                "a `for` over anything but a range",
            ),
            ("|t, c| { c.launch_missiles(); }", "`c.launch_missiles`"),
            ("|t, c| { let (a, b) = (1u32, 2u32); }", "a pattern"),
            ("|t, c| { for mut i in 0..t.n { } }", "this `for` pattern"),
            (
                "|t, c| { #[cfg(debug_assertions)] c.fail(1); }",
                "an attribute",
            ),
        ] {
            let e = cuda(body).unwrap_err();
            assert!(e.contains(what) && e.contains("supported"), "{body}: {e}");
        }
        let e = cuda("|t, c| { c.fail(SCALE); }").unwrap_err();
        assert!(e.contains("`SCALE` is not a local of this body"), "{e}");
        assert!(cuda("|t| {}").unwrap_err().contains("two parameters"));
    }
}
