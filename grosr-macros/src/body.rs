//! Task bodies in Rust syntax (`rust = |task, ctx| { .. }`): the supported subset, translated to
//! the CUDA C++ statements a `cuda = ".."` body would be.
//!
//! The closure is also emitted as a Rust function over `&T` and `&mut grosr::body::Ctx`, so rustc
//! checks every name, type and spawned field before NVRTC sees the translation; this module only
//! has to reject what the subset leaves out (each error at its span, saying what is supported)
//! and write C++ with the same meaning. No type inference is needed: an untyped `let` becomes
//! `auto`, and the math methods map to CUDA's overloads (`x.exp()` is `exp(x)`, which is `expf`
//! for a `float`).

use proc_macro2::Span;
use syn::spanned::Spanned as _;
use syn::{BinOp, Block, Expr, ExprClosure, Lit, Pat, Stmt, Type, UnOp};

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
pub(crate) fn to_cuda(body: &RustBody) -> Result<String, Vec<syn::Error>> {
    let mut w = Writer {
        body,
        out: String::new(),
        errors: Vec::new(),
        depth: 1,
        scopes: vec![Vec::new()],
        fresh: 0,
    };
    w.block_items(&body.block);
    if w.errors.is_empty() {
        Ok(w.out)
    } else {
        Err(w.errors)
    }
}

struct Writer<'a> {
    body: &'a RustBody,
    out: String,
    errors: Vec<syn::Error>,
    depth: usize,
    /// Per C block, its locals: (Rust name, C name). Rust lets a `let` shadow one in the same
    /// block, which C++ forbids: the second gets a fresh C name.
    scopes: Vec<Vec<(String, String)>>,
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

    /// Declares Rust local `name` in the current C block: its C name.
    fn declare(&mut self, name: &str) -> String {
        let taken = self
            .scopes
            .last()
            .is_some_and(|s| s.iter().any(|(r, _)| r == name));
        let c = if taken {
            self.fresh += 1;
            format!("{name}_grosr{}", self.fresh)
        } else {
            name.to_string()
        };
        if let Some(scope) = self.scopes.last_mut() {
            scope.push((name.to_string(), c.clone()));
        }
        c
    }

    /// The C name of Rust local `name` (the innermost, latest declaration).
    fn local_name(&self, name: &str) -> String {
        self.scopes
            .iter()
            .rev()
            .find_map(|s| {
                s.iter()
                    .rev()
                    .find(|(r, _)| r == name)
                    .map(|(_, c)| c.clone())
            })
            .unwrap_or_else(|| name.to_string())
    }

    fn stmt(&mut self, stmt: &Stmt) {
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
                Pat::Ident(p) => (&p.ident, Some(&*t.ty)),
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
            let name = self.declare(&ident.to_string());
            self.line(&format!("{elem} {name}[{len}];"));
            self.line(&format!(
                "for (uint32_t grosr_i = 0; grosr_i < ({len}); ++grosr_i) {name}[grosr_i] = {value};"
            ));
            return;
        }
        let c_ty = ty.map_or_else(|| String::from("auto"), |t| self.c_type(t));
        // The value first: `let x = x + 1;` reads the older `x`.
        let value = self.expr(&init.expr);
        let name = self.declare(&ident.to_string());
        self.line(&format!("{c_ty} {name} = {value};"));
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
                if let Some(v) = &r.expr {
                    self.error(unsupported(
                        v.span(),
                        "a returned value (a body returns nothing)",
                    ));
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
        let Pat::Ident(var) = &*f.pat else {
            self.error(unsupported(f.pat.span(), "a pattern in `for`"));
            return;
        };
        let var = &var.ident;
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
        let from = self.expr(from);
        let to = self.expr(to);
        let cmp = match r.limits {
            syn::RangeLimits::HalfOpen(_) => "<",
            syn::RangeLimits::Closed(_) => "<=",
        };
        let step = step.map_or_else(|| String::from("1"), |s| self.expr(s));
        // The variable lives in the loop's own scope (the C `for`), so it may reuse a name.
        self.scopes.push(Vec::new());
        let var = self.declare(&var.to_string());
        // The bound is read once, as Rust evaluates the range once; the variable takes the
        // bounds' common type (`0..task.n` counts in `uint32_t`, as Rust infers `u32`).
        self.nested(
            &format!(
                "for (decltype(({from}) + ({to})) {var} = {from}, grosr_end_{var} = {to}; \
                 {var} {cmp} grosr_end_{var}; {var} += {step})"
            ),
            &f.body,
        );
        self.scopes.pop();
    }

    fn c_type(&mut self, ty: &Type) -> String {
        match ty {
            Type::Path(p) if p.qself.is_none() => {
                if let Some(id) = p.path.get_ident() {
                    if let Some(c) = primitive(&id.to_string()) {
                        return c.to_string();
                    }
                    // A record or task type: the C struct of the same name.
                    return id.to_string();
                }
                self.error(unsupported(ty.span(), "this type"))
            }
            _ => self.error(unsupported(ty.span(), "this type")),
        }
    }

    fn expr(&mut self, e: &Expr) -> String {
        match e {
            Expr::Lit(l) => match literal(&l.lit) {
                Some(text) => text,
                None => self.error(unsupported(l.span(), "this literal")),
            },
            Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => match p.path.get_ident() {
                Some(id) if *id == self.body.task => String::from("task"),
                Some(id) if *id == self.body.ctx => String::from("ctx"),
                Some(id) => self.local_name(&id.to_string()),
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
            Expr::Unary(u) => {
                let op = match u.op {
                    UnOp::Neg(_) => "-",
                    UnOp::Not(_) => "!",
                    _ => return self.error(unsupported(u.span(), "this operator")),
                };
                let inner = self.expr(&u.expr);
                // `!` of an integer is its bitwise complement in Rust.
                if op == "!" && !is_boolean(&u.expr) {
                    return format!("(~{inner})");
                }
                format!("({op}{inner})")
            }
            Expr::Binary(b) => self.binary(b),
            Expr::Assign(a) => {
                let left = self.expr(&a.left);
                let right = self.expr(&a.right);
                format!("{left} = {right}")
            }
            Expr::Cast(c) => {
                let ty = self.c_type(&c.ty);
                let inner = self.expr(&c.expr);
                format!("(({ty})({inner}))")
            }
            Expr::If(i) => self.if_value(i),
            Expr::MethodCall(m) => self.method(m),
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
        let op = match b.op {
            BinOp::Add(_) => "+",
            BinOp::Sub(_) => "-",
            BinOp::Mul(_) => "*",
            BinOp::Div(_) => "/",
            BinOp::Rem(_) => "%",
            BinOp::And(_) => "&&",
            BinOp::Or(_) => "||",
            BinOp::BitXor(_) => "^",
            BinOp::BitAnd(_) => "&",
            BinOp::BitOr(_) => "|",
            BinOp::Shl(_) => "<<",
            BinOp::Shr(_) => ">>",
            BinOp::Eq(_) => "==",
            BinOp::Lt(_) => "<",
            BinOp::Le(_) => "<=",
            BinOp::Ne(_) => "!=",
            BinOp::Ge(_) => ">=",
            BinOp::Gt(_) => ">",
            BinOp::AddAssign(_) => "+=",
            BinOp::SubAssign(_) => "-=",
            BinOp::MulAssign(_) => "*=",
            BinOp::DivAssign(_) => "/=",
            BinOp::RemAssign(_) => "%=",
            BinOp::BitXorAssign(_) => "^=",
            BinOp::BitAndAssign(_) => "&=",
            BinOp::BitOrAssign(_) => "|=",
            BinOp::ShlAssign(_) => "<<=",
            BinOp::ShrAssign(_) => ">>=",
            _ => return self.error(unsupported(b.span(), "this operator")),
        };
        let left = self.expr(&b.left);
        let right = self.expr(&b.right);
        if op.ends_with('=') && !matches!(op, "==" | "<=" | ">=" | "!=") {
            format!("{left} {op} {right}")
        } else {
            format!("({left} {op} {right})")
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
        format!("(({cond}) ? ({then}) : ({els}))")
    }

    fn args(&mut self, m: &syn::ExprMethodCall) -> Vec<String> {
        m.args.iter().map(|a| self.expr(a)).collect()
    }

    fn method(&mut self, m: &syn::ExprMethodCall) -> String {
        if m.turbofish.is_some() {
            return self.error(unsupported(m.span(), "a turbofish"));
        }
        let name = m.method.to_string();
        let on_ctx = matches!(&*m.receiver, Expr::Path(p) if p.path.is_ident(&self.body.ctx));
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
            ("abs", 0) => call("abs", &args),
            (
                "sqrt" | "exp" | "exp2" | "sin" | "cos" | "tan" | "floor" | "ceil" | "round"
                | "trunc" | "tanh" | "cbrt",
                0,
            ) => call(&name, &args),
            ("ln", 0) => call("log", &args),
            ("log2", 0) => call("log2", &args),
            ("log10", 0) => call("log10", &args),
            ("recip", 0) => format!("(1 / ({receiver}))"),
            ("max" | "min", 1) => call(&name, &args),
            ("powf" | "powi", 1) => call("pow", &args),
            ("mul_add", 2) => call("fma", &args),
            ("wrapping_add", 1) => format!("({receiver} + {})", args[0]),
            ("wrapping_sub", 1) => format!("({receiver} - {})", args[0]),
            ("wrapping_mul", 1) => format!("({receiver} * {})", args[0]),
            _ => self.error(unsupported(
                m.method.span(),
                &format!("the method `{name}`"),
            )),
        }
    }

    fn ctx_method(&mut self, m: &syn::ExprMethodCall, name: &str) -> String {
        // `ctx.spawn(T { .. })`: fields by name, so a reordered struct keeps its meaning.
        if name == "spawn" {
            return self.spawn(m);
        }
        let args = self.args(m);
        let a = |i: usize| args.get(i).cloned().unwrap_or_default();
        match (name, args.len()) {
            ("lane", 0) => String::from("ctx.lane()"),
            ("width", 0) => String::from("ctx.width()"),
            ("fail", 1) => format!("ctx.fail({})", a(0)),
            ("read", 2) => format!("({})[{}]", a(0), a(1)),
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
            ("ballot", 1) => format!("__ballot_sync(0xffffffffu, {})", a(0)),
            ("any", 1) => format!("__any_sync(0xffffffffu, {})", a(0)),
            ("all", 1) => format!("__all_sync(0xffffffffu, {})", a(0)),
            ("shuffle", 2) => format!("__shfl_sync(0xffffffffu, {}, {})", a(0), a(1)),
            ("shuffle_xor", 2) => format!("__shfl_xor_sync(0xffffffffu, {}, {})", a(0), a(1)),
            ("sync_threads", 0) => String::from("__syncthreads()"),
            ("globaltimer", 0) => String::from("grosr::globaltimer()"),
            _ => self.error(unsupported(
                m.method.span(),
                &format!("`{}.{name}` with these arguments", self.body.ctx),
            )),
        }
    }

    fn spawn(&mut self, m: &syn::ExprMethodCall) -> String {
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
        // Fields set by name in a lambda (C++11): a designated initialiser needs C++20.
        let mut text = format!("grosr_spawn_{ty}(ctx, [&]() {{ {ty} grosr_r{{}}; ");
        for f in &s.fields {
            let syn::Member::Named(name) = &f.member else {
                return self.error(unsupported(f.span(), "a tuple field"));
            };
            let value = self.expr(&f.expr);
            text.push_str(&format!("grosr_r.{name} = {value}; "));
        }
        text.push_str("return grosr_r; }())");
        text
    }
}

/// Whether `e` is obviously boolean (a comparison, `&&`/`||`, `!` of one, a bool literal), so
/// that `!` stays logical; `!` of anything else is Rust's bitwise complement.
fn is_boolean(e: &Expr) -> bool {
    match e {
        Expr::Binary(b) => matches!(
            b.op,
            BinOp::Eq(_)
                | BinOp::Ne(_)
                | BinOp::Lt(_)
                | BinOp::Le(_)
                | BinOp::Gt(_)
                | BinOp::Ge(_)
                | BinOp::And(_)
                | BinOp::Or(_)
        ),
        Expr::Lit(l) => matches!(l.lit, Lit::Bool(_)),
        Expr::Paren(p) => is_boolean(&p.expr),
        Expr::Unary(u) => matches!(u.op, UnOp::Not(_)) && is_boolean(&u.expr),
        Expr::MethodCall(m) => matches!(m.method.to_string().as_str(), "any" | "all"),
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

/// A literal in C: integer suffixes become casts (exact for every width), an unsuffixed float is
/// a `float` (write `1.5f64` for a `double`).
fn literal(lit: &Lit) -> Option<String> {
    match lit {
        Lit::Int(i) => {
            let digits = i.base10_digits();
            Some(match i.suffix() {
                "" => digits.to_string(),
                s => format!("(({})({digits}ull))", primitive(s)?),
            })
        }
        Lit::Float(f) => {
            let digits = f.base10_digits();
            let digits = if digits.contains(['.', 'e', 'E']) {
                digits.to_string()
            } else {
                format!("{digits}.0")
            };
            Some(match f.suffix() {
                "f64" => digits,
                "" | "f32" => format!("{digits}f"),
                _ => return None,
            })
        }
        Lit::Bool(b) => Some(if b.value { "true" } else { "false" }.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cuda(closure: &str) -> Result<String, String> {
        let c: ExprClosure = syn::parse_str(closure).expect("a closure");
        let body = parse(&c).map_err(|e| e.to_string())?;
        to_cuda(&body).map_err(|e| {
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })
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
        assert_eq!(
            c,
            "    auto m = 0.0f;\n\
             \x20   for (decltype((ctx.lane()) + (task.n)) i = ctx.lane(), grosr_end_i = task.n; i < grosr_end_i; i += 32) {\n\
             \x20       m = max(m, (task.x)[i]);\n\
             \x20   }\n\
             \x20   m = grosr::warp_max(m);\n\
             \x20   if ((ctx.lane() == 0)) {\n\
             \x20       ((task.y)[task.row] = (exp(m)));\n\
             \x20   }\n"
        );
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
                "grosr_spawn_Fib(ctx, [&]() { Fib grosr_r{}; grosr_r.n = (task.n - 1); \
                 grosr_r.out = task.out; return grosr_r; }());"
            ),
            "{c}"
        );
        assert!(
            c.contains("atomicAdd(&(task.out)[((uint32_t)(0ull))], ((uint32_t)(task.n)));"),
            "{c}"
        );
        assert!(c.contains("} else {") || c.contains("else {"), "{c}");
    }

    #[test]
    fn a_let_that_shadows_one_in_the_same_block_gets_a_fresh_c_name() {
        let c = cuda(
            "|t, c| { let x = t.n; let x = x + 1; if x > 2 { let x = 0; c.fail(x); } c.fail(x); }",
        )
        .unwrap();
        assert!(c.contains("auto x = task.n;"), "{c}");
        assert!(c.contains("auto x_grosr1 = (x + 1);"), "{c}");
        assert!(c.contains("if ((x_grosr1 > 2)) {"), "{c}");
        assert!(
            c.contains("auto x = 0;") && c.contains("ctx.fail(x);"),
            "{c}"
        );
        assert!(c.ends_with("    ctx.fail(x_grosr1);\n"), "{c}");
    }

    #[test]
    fn bitwise_not_of_an_integer_and_logical_not_of_a_comparison() {
        let c = cuda("|t, c| { let a: u32 = !t.mask; let b = !(t.n < 3); }").unwrap();
        assert!(c.contains("uint32_t a = (~task.mask);"), "{c}");
        assert!(c.contains("auto b = (!((task.n < 3)));"), "{c}");
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
            ("|t, c| { let (a, b) = (1, 2); }", "a pattern"),
        ] {
            let e = cuda(body).unwrap_err();
            assert!(e.contains(what) && e.contains("supported:"), "{body}: {e}");
        }
        assert!(cuda("|t| {}").unwrap_err().contains("two parameters"));
    }
}
