//! CPU tests of what `#[grosr::record]` and `#[grosr::task]` expand to: layouts, field tables,
//! task constants, bodies and their source locations, and the generated C definitions.

use std::mem::{offset_of, size_of};

use grosr::record::CDefinitions;
use grosr::{DevicePtr, DeviceType, Granularity, MAX_RECORD_BYTES, Record, Task};

// ---------------------------------------------------------------------------------------------
// Declarations

const ADD_SCALAR_LINE: u32 = line!() + 2;
/// Adds `a` to `n` floats at `x` (default granularity: warp).
#[grosr::task(cuda = r#"
    for (uint32_t i = ctx.lane(); i < task.n; i += ctx.width()) {
        task.x[i] += task.a;
    }
"#)]
pub struct AddScalar {
    pub x: DevicePtr<f32>,
    pub n: u32,
    pub a: f32,
}

const PER_LANE_LINE: u32 = line!() + 5;
// The literal starts two lines below the attribute.
#[rustfmt::skip]
#[grosr::task(
    granularity = "lane",
    cuda = "task.out[0] = task.v;"
)]
struct PerLane {
    out: DevicePtr<u32>,
    v: u32,
    pad: u32,
}

#[grosr::task(cuda = "/* warp */", granularity = "warp")]
struct ExplicitWarp {
    v: u64,
}

#[grosr::task(granularity = "block", cuda = r"__syncthreads();")]
struct PerBlock {
    data: DevicePtr<[f32; 4]>,
    counts: [u32; 4],
}

#[grosr::task(file = "../tests/cuda/body.cu", granularity = "warp")]
struct FromFile {
    x: DevicePtr<f32>,
    n: u32,
    _pad: u32,
}

#[grosr::record]
#[derive(Debug, PartialEq)]
struct Pair {
    lo: u32,
    hi: u32,
}

/// A record with a byte array and a user `#[repr(C)]` and derives of its own.
#[grosr::record]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Tagged {
    pub value: f32,
    pub tag: [u8; 3],
    pub flags: u8,
}

/// A record containing a record containing an array, and a pointer to arrays.
#[grosr::record]
#[derive(Copy, Debug)]
struct Outer {
    m: DevicePtr<[f32; 4]>,
    r#in: Tagged,
    pairs: [Pair; 2],
}

/// A linked list node: a pointer to its own type.
#[grosr::record]
#[derive(Debug, PartialEq)]
struct Node {
    next: DevicePtr<Self>,
    value: u32,
    weight: f32,
}

/// A task whose record holds other records (40 bytes of 48).
#[grosr::task(granularity = "lane", cuda = "task.out[0] = task.outer.pairs[1].hi;")]
struct Gather {
    out: DevicePtr<u32>,
    outer: Outer,
}

#[grosr::task(cuda = "", granularity = "block")]
struct Largest {
    words: [u64; 6],
}

/// The expansions must not depend on the names in scope where they are used.
mod shadowed {
    #![allow(dead_code, non_camel_case_types, unused_macros)]
    mod core {}
    mod std {}
    mod bytemuck {}
    struct DeviceType;
    struct Record;
    struct Field;
    struct CudaBody;
    type String = ();
    type str = u8;
    macro_rules! format {
        () => {};
    }
    macro_rules! assert {
        () => {};
    }

    #[grosr::record]
    pub struct Inner {
        pub a: i16,
        pub b: i16,
    }

    #[grosr::task(cuda = "ctx;")]
    pub struct Shadowed {
        pub p: grosr::DevicePtr<Inner>,
        pub inner: Inner,
        pub pad: u32,
    }
}

// Rust bodies whose CUDA translations the snapshot tests below compare whole.

const RS_COUNT_LINE: u32 = line!() + 1;
#[grosr::task(granularity = "lane", rust = |task, ctx| {
    let mut hits = 0u32;
    for i in (task.start..task.end).step_by(4) {
        if ctx.read(task.keys, i) == task.key {
            hits += 1;
        }
    }
    ctx.atomic_add(task.count, 0u32, hits);
})]
struct RsCount {
    keys: DevicePtr<u32>,
    count: DevicePtr<u32>,
    start: u32,
    end: u32,
    key: u32,
    pad: u32,
}

#[grosr::task(granularity = "warp", rust = |task, ctx| {
    let x = ctx.read(task.x, task.row * 32 + ctx.lane());
    let total = ctx.warp_sum(x);
    let top = ctx.warp_max(x);
    if ctx.lane() == 0 {
        ctx.write(task.sums, task.row, total);
        ctx.write(task.maxes, task.row, top);
    }
})]
struct RsRowStats {
    x: DevicePtr<f32>,
    sums: DevicePtr<f32>,
    maxes: DevicePtr<f32>,
    row: u32,
    pad: u32,
}

#[grosr::task(granularity = "block", rust = |task, ctx| {
    let i = task.base + ctx.lane();
    ctx.write(task.tmp, i, ctx.read(task.src, i) * 2.0f32);
    ctx.sync_threads();
    let j = task.base + (ctx.width() - 1 - ctx.lane());
    ctx.write(task.dst, i, ctx.read(task.tmp, j));
})]
struct RsReverse {
    src: DevicePtr<f32>,
    tmp: DevicePtr<f32>,
    dst: DevicePtr<f32>,
    base: u32,
    pad: u32,
}

// ---------------------------------------------------------------------------------------------
// Tests

fn fields<R: Record>() -> Vec<(&'static str, usize, usize)> {
    R::FIELDS
        .iter()
        .map(|f| (f.name, f.offset, f.size))
        .collect()
}

fn decls<R: Record>() -> Vec<String> {
    R::FIELDS.iter().map(|f| (f.c_decl)(f.name)).collect()
}

#[test]
fn sizes() {
    assert_eq!(size_of::<AddScalar>(), 16);
    assert_eq!(size_of::<PerLane>(), 16);
    assert_eq!(size_of::<ExplicitWarp>(), 8);
    assert_eq!(size_of::<PerBlock>(), 24);
    assert_eq!(size_of::<FromFile>(), 16);
    assert_eq!(size_of::<Pair>(), 8);
    assert_eq!(size_of::<Tagged>(), 8);
    assert_eq!(size_of::<Outer>(), 32);
    assert_eq!(size_of::<Node>(), 16);
    assert_eq!(size_of::<Gather>(), 40);
    assert_eq!(size_of::<Largest>(), MAX_RECORD_BYTES);
    assert_eq!(size_of::<shadowed::Shadowed>(), 16);
}

#[test]
fn field_tables() {
    assert_eq!(AddScalar::C_NAME, "AddScalar");
    assert_eq!(
        fields::<AddScalar>(),
        [("x", 0, 8), ("n", 8, 4), ("a", 12, 4)]
    );
    assert_eq!(decls::<AddScalar>(), ["float *x", "uint32_t n", "float a"]);

    assert_eq!(Tagged::C_NAME, "Tagged");
    assert_eq!(
        fields::<Tagged>(),
        [("value", 0, 4), ("tag", 4, 3), ("flags", 7, 1)]
    );

    // A raw identifier keeps its C name without `r#`.
    assert_eq!(Outer::C_NAME, "Outer");
    assert_eq!(
        fields::<Outer>(),
        [("m", 0, 8), ("in", 8, 8), ("pairs", 16, 16)]
    );
    assert_eq!(offset_of!(Outer, r#in), 8);
    assert_eq!(
        decls::<Outer>(),
        ["float (*m)[4]", "Tagged in", "Pair pairs[2]"]
    );

    assert_eq!(
        fields::<Node>(),
        [("next", 0, 8), ("value", 8, 4), ("weight", 12, 4)]
    );
    assert_eq!(
        decls::<Node>(),
        ["Node *next", "uint32_t value", "float weight"]
    );

    assert_eq!(
        decls::<PerBlock>(),
        ["float (*data)[4]", "uint32_t counts[4]"]
    );
    assert_eq!(fields::<Gather>(), [("out", 0, 8), ("outer", 8, 32)]);
    assert_eq!(<Pair as DeviceType>::c_decl("p"), "Pair p");
    assert_eq!(<[Pair; 3] as DeviceType>::c_decl("ps"), "Pair ps[3]");
    assert_eq!(<shadowed::Shadowed as Record>::C_NAME, "Shadowed");
    assert_eq!(
        decls::<shadowed::Shadowed>(),
        ["Inner *p", "Inner inner", "uint32_t pad"]
    );
}

#[test]
fn granularities() {
    assert_eq!(AddScalar::GRANULARITY, Granularity::Warp);
    assert_eq!(ExplicitWarp::GRANULARITY, Granularity::Warp);
    assert_eq!(PerLane::GRANULARITY, Granularity::Lane);
    assert_eq!(PerBlock::GRANULARITY, Granularity::Block);
    assert_eq!(FromFile::GRANULARITY, Granularity::Warp);
    assert_eq!(Gather::GRANULARITY, Granularity::Lane);
    assert_eq!(Largest::GRANULARITY, Granularity::Block);
}

#[test]
fn inline_bodies() {
    let body = AddScalar::BODY;
    assert_eq!(
        body.code,
        "\n    for (uint32_t i = ctx.lane(); i < task.n; i += ctx.width()) {\n        \
         task.x[i] += task.a;\n    }\n"
    );
    assert_eq!(body.line, ADD_SCALAR_LINE);
    assert!(body.file.ends_with("macro_expand.rs"), "{}", body.file);

    // The line is where the literal starts, not where the attribute does.
    assert_eq!(PerLane::BODY.code, "task.out[0] = task.v;");
    assert_eq!(PerLane::BODY.line, PER_LANE_LINE);
    assert!(PerLane::BODY.file.ends_with("macro_expand.rs"));

    assert_eq!(PerBlock::BODY.code, "__syncthreads();");
    assert_eq!(ExplicitWarp::BODY.code, "/* warp */");
    assert_eq!(shadowed::Shadowed::BODY.code, "ctx;");
}

#[test]
fn file_body() {
    let body = FromFile::BODY;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/cuda/body.cu");
    assert_eq!(body.code, std::fs::read_to_string(path).unwrap());
    assert!(body.code.contains("task.x[i] *= 2.0f;"));
    assert_eq!(body.file, path);
    assert_eq!(body.line, 1);
}

#[test]
fn derives_and_bytes() {
    // Clone and Copy are added only where the user did not derive them; theirs still work.
    let t = Tagged {
        value: 1.5,
        tag: *b"abc",
        flags: 7,
    };
    let copy = t;
    assert_eq!(t.clone(), copy);
    assert_eq!(
        Tagged::default(),
        Tagged {
            value: 0.0,
            tag: [0; 3],
            flags: 0
        }
    );

    let outer = Outer {
        m: DevicePtr::from_raw(0x1000),
        r#in: t,
        pairs: [Pair { lo: 1, hi: 2 }, Pair { lo: 3, hi: 4 }],
    };
    let bytes = bytemuck::bytes_of(&outer);
    assert_eq!(bytes.len(), 32);
    assert_eq!(&bytes[0..8], &0x1000u64.to_ne_bytes());
    assert_eq!(&bytes[8..12], &1.5f32.to_ne_bytes());
    assert_eq!(&bytes[12..16], b"abc\x07");
    assert_eq!(&bytes[28..32], &4u32.to_ne_bytes());
    let back: Outer = bytemuck::pod_read_unaligned(bytes);
    assert_eq!(back.m, outer.m);
    assert_eq!(back.r#in, t);
    assert_eq!(back.pairs, outer.pairs);

    let task = AddScalar {
        x: DevicePtr::from_raw(0xdead_0000),
        n: 10,
        a: 0.5,
    };
    let back: &AddScalar = bytemuck::from_bytes(bytemuck::bytes_of(&task));
    assert_eq!((back.x, back.n, back.a), (task.x, 10, 0.5));

    let node = Node {
        next: DevicePtr::null(),
        value: 3,
        weight: 2.0,
    };
    assert_eq!(
        *bytemuck::from_bytes::<Node>(bytemuck::bytes_of(&node)),
        node
    );
    let zero: Gather = bytemuck::Zeroable::zeroed();
    assert!(zero.out.is_null());
}

#[test]
fn c_definitions_nested() {
    let mut defs = CDefinitions::default();
    defs.define::<Outer>();
    let expected = "\
struct Outer;
struct Tagged;
struct Pair;

struct Tagged {
    float value;
    uint8_t tag[3];
    uint8_t flags;
};
static_assert(sizeof(Tagged) == 8, \"grosr: C layout of Tagged differs from Rust\");
GROSR_FIELD(Tagged, value, 0, 4);
GROSR_FIELD(Tagged, tag, 4, 3);
GROSR_FIELD(Tagged, flags, 7, 1);
struct Pair {
    uint32_t lo;
    uint32_t hi;
};
static_assert(sizeof(Pair) == 8, \"grosr: C layout of Pair differs from Rust\");
GROSR_FIELD(Pair, lo, 0, 4);
GROSR_FIELD(Pair, hi, 4, 4);
struct Outer {
    float (*m)[4];
    Tagged in;
    Pair pairs[2];
};
static_assert(sizeof(Outer) == 32, \"grosr: C layout of Outer differs from Rust\");
GROSR_FIELD(Outer, m, 0, 8);
GROSR_FIELD(Outer, in, 8, 8);
GROSR_FIELD(Outer, pairs, 16, 16);
";
    assert_eq!(defs.source(), expected);

    // Defining a task that contains Outer adds only the task itself.
    defs.define::<Gather>();
    assert!(defs.source().ends_with(
        "\
struct Gather {
    uint32_t *out;
    Outer outer;
};
static_assert(sizeof(Gather) == 40, \"grosr: C layout of Gather differs from Rust\");
GROSR_FIELD(Gather, out, 0, 8);
GROSR_FIELD(Gather, outer, 8, 32);
"
    ));
    assert_eq!(defs.source().matches("struct Outer {").count(), 1);
}

#[test]
fn c_definitions_linked_list_and_pointers() {
    let mut defs = CDefinitions::default();
    defs.define::<Node>();
    defs.define::<AddScalar>();
    defs.define::<PerBlock>();
    let expected = "\
struct Node;
struct AddScalar;
struct PerBlock;

struct Node {
    Node *next;
    uint32_t value;
    float weight;
};
static_assert(sizeof(Node) == 16, \"grosr: C layout of Node differs from Rust\");
GROSR_FIELD(Node, next, 0, 8);
GROSR_FIELD(Node, value, 8, 4);
GROSR_FIELD(Node, weight, 12, 4);
struct AddScalar {
    float *x;
    uint32_t n;
    float a;
};
static_assert(sizeof(AddScalar) == 16, \"grosr: C layout of AddScalar differs from Rust\");
GROSR_FIELD(AddScalar, x, 0, 8);
GROSR_FIELD(AddScalar, n, 8, 4);
GROSR_FIELD(AddScalar, a, 12, 4);
struct PerBlock {
    float (*data)[4];
    uint32_t counts[4];
};
static_assert(sizeof(PerBlock) == 24, \"grosr: C layout of PerBlock differs from Rust\");
GROSR_FIELD(PerBlock, data, 0, 8);
GROSR_FIELD(PerBlock, counts, 8, 16);
";
    assert_eq!(defs.source(), expected);
}

#[test]
fn c_dependencies_of_a_record_type() {
    // A record used as a field type (or behind a pointer) pulls in its definition.
    let mut defs = CDefinitions::default();
    <DevicePtr<Tagged> as DeviceType>::c_dependencies(&mut defs);
    assert!(
        defs.source()
            .contains("struct Tagged {\n    float value;\n")
    );
    let mut defs = CDefinitions::default();
    Gather::field_dependencies(&mut defs);
    assert!(defs.source().contains("struct Outer {"));
    assert!(!defs.source().contains("struct Gather {"));
}

// Whole translations: any change in how a Rust body becomes CUDA shows up as a diff here.

#[test]
fn rust_body_lane_loop_with_step_and_atomic_translates_exactly() {
    const EXPECTED: &str = r#"    auto hits_1 = grosr::rs::let(((uint32_t)(0ull)));
    {
        typedef grosr::rs::common_t<decltype(task.start), decltype(task.end)> grosr_from_2_t;
        typedef typename grosr::rs::unsigned_of<grosr_from_2_t>::type grosr_from_2_u;
        const grosr_from_2_t grosr_from_2 = task.start, grosr_to_3 = task.end;
        const uint64_t grosr_step_4 = (uint64_t)(4);
        bool grosr_more_5 = grosr_from_2 < grosr_to_3;
        for (grosr_from_2_t i_6 = grosr_from_2; grosr_more_5; grosr_more_5 = grosr_step_4 != 0 && (uint64_t)(grosr_from_2_u)((grosr_from_2_u)grosr_to_3 - (grosr_from_2_u)i_6) > grosr_step_4, i_6 = grosr_more_5 ? (grosr_from_2_t)(grosr_from_2_u)((grosr_from_2_u)i_6 + (grosr_from_2_u)grosr_step_4) : i_6) {
            if (grosr::rs::eq((task.keys)[i_6], task.key)) {
                grosr::rs::add_assign(hits_1, 1);
            }
        }
    }
    atomicAdd(&(task.count)[((uint32_t)(0ull))], hits_1);
"#;
    assert_eq!(RsCount::GRANULARITY, Granularity::Lane);
    assert_eq!(RsCount::BODY.code, EXPECTED);
    // The body's place is the closure's, for NVRTC's messages.
    assert_eq!(RsCount::BODY.line, RS_COUNT_LINE);
    assert!(RsCount::BODY.file.ends_with("macro_expand.rs"));
}

#[test]
fn rust_body_warp_collectives_and_pointer_access_translate_exactly() {
    const EXPECTED: &str = r#"    auto x_1 = grosr::rs::let((task.x)[grosr::rs::add(grosr::rs::mul(task.row, 32), ctx.lane())]);
    auto total_2 = grosr::rs::let(grosr::warp_sum(x_1));
    auto top_3 = grosr::rs::let(grosr::warp_max(x_1));
    if (grosr::rs::eq(ctx.lane(), 0)) {
        ((task.sums)[task.row] = (total_2));
        ((task.maxes)[task.row] = (top_3));
    }
"#;
    assert_eq!(RsRowStats::GRANULARITY, Granularity::Warp);
    assert_eq!(RsRowStats::BODY.code, EXPECTED);
}

#[test]
fn rust_body_block_barrier_translates_exactly() {
    const EXPECTED: &str = r#"    auto i_1 = grosr::rs::let(grosr::rs::add(task.base, ctx.lane()));
    ((task.tmp)[i_1] = (grosr::rs::mul((task.src)[i_1], 2.0f)));
    __syncthreads();
    auto j_2 = grosr::rs::let(grosr::rs::add(task.base, (grosr::rs::sub(grosr::rs::sub(ctx.width(), 1), ctx.lane()))));
    ((task.dst)[i_1] = ((task.tmp)[j_2]));
"#;
    assert_eq!(RsReverse::GRANULARITY, Granularity::Block);
    assert_eq!(RsReverse::BODY.code, EXPECTED);
}
