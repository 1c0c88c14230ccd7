//! Task records: the contract between a Rust struct and its C twin in device code.
//!
//! `#[grosr::task]` and `#[grosr::record]` implement these traits; users rarely touch them
//! directly. Every record is `#[repr(C)]`, has no padding and is [`bytemuck::Pod`], so its
//! bytes can be copied into a GPU queue and read back by the generated C struct unchanged.
//! The macro checks the layout at compile time (Rust `const` asserts) and the generated CUDA
//! checks it again (`static_assert(offsetof(..))`), so the two sides cannot drift apart.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::marker::PhantomData;

/// The largest record a task may have, in bytes: a queue slot holds one record beside its header.
pub const MAX_RECORD_BYTES: usize = 48;

/// How many GPU threads run one task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// One thread: a warp runs up to 32 such tasks at once. `ctx.lane()` is 0, `ctx.width()` 1.
    Lane,
    /// One warp of 32 threads (the default). `ctx.lane()` is 0..32, `ctx.width()` 32.
    Warp,
    /// One whole thread block. `ctx.lane()` is `threadIdx.x`, `ctx.width()` `blockDim.x`.
    Block,
}

impl Granularity {
    /// The value of the `GROSR_*` constant that names this granularity in generated CUDA.
    pub(crate) fn c_name(self) -> &'static str {
        match self {
            Granularity::Lane => "GROSR_LANE",
            Granularity::Warp => "GROSR_WARP",
            Granularity::Block => "GROSR_BLOCK",
        }
    }
}

/// A task body's CUDA C source and where it was written, for the `#line` directive that makes
/// NVRTC's errors point at the user's Rust file.
#[derive(Clone, Copy, Debug)]
pub struct CudaBody {
    /// The body's text: statements that see `grosr::Ctx& ctx` and `const T& task`.
    pub code: &'static str,
    /// The file the text stands in (a Rust source file, or the `.cu` file named by `file = ..`).
    pub file: &'static str,
    /// The line of `file` on which `code` begins.
    pub line: u32,
}

/// A type that has a C equivalent in device code and may be a field of a record.
///
/// # Safety
/// `c_decl` must declare a C object with exactly the size, alignment and bit layout of `Self`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a field of a grosr record",
    label = "not a device type",
    note = "fields may be integers, floats, `DevicePtr<T>`, fixed arrays of these, or structs \
            declared with `#[grosr::record]` or `#[grosr::task]`"
)]
pub unsafe trait DeviceType: bytemuck::Pod {
    /// The C declaration of a variable called `name` of this type: `float name`, `uint32_t name[4]`.
    fn c_decl(name: &str) -> String;
    /// Adds the C definitions this type needs (those of the records it contains) to `defs`.
    fn c_dependencies(defs: &mut CDefinitions) {
        let _ = defs;
    }
    /// Whether `Self` is a C array (a pointer to it then needs parentheses: `float (*p)[4]`).
    #[doc(hidden)]
    const IS_ARRAY: bool = false;
}

macro_rules! primitive_device_types {
    ($($rust:ty => $c:literal),* $(,)?) => {$(
        // SAFETY: the C type named has the size and alignment of the Rust one on every CUDA target.
        unsafe impl DeviceType for $rust {
            fn c_decl(name: &str) -> String {
                format!(concat!($c, " {}"), name)
            }
        }
    )*};
}

primitive_device_types! {
    u8 => "uint8_t", u16 => "uint16_t", u32 => "uint32_t", u64 => "uint64_t",
    i8 => "int8_t", i16 => "int16_t", i32 => "int32_t", i64 => "int64_t",
    f32 => "float", f64 => "double",
}

// SAFETY: a C array of N elements has the layout of a Rust array of N elements.
unsafe impl<T: DeviceType, const N: usize> DeviceType for [T; N] {
    fn c_decl(name: &str) -> String {
        T::c_decl(&format!("{name}[{N}]"))
    }
    fn c_dependencies(defs: &mut CDefinitions) {
        T::c_dependencies(defs);
    }
    const IS_ARRAY: bool = true;
}

/// The address of a `T` (or of an array of them) in GPU memory, as a task record holds it.
///
/// In device code a `DevicePtr<T>` field is a plain `T*`.
///
/// ```
/// use grosr::DevicePtr;
/// let p = DevicePtr::<f32>::from_raw(0x7f00_0000_0000);
/// assert_eq!(p.add(4).addr(), 0x7f00_0000_0010);
/// assert!(DevicePtr::<f32>::null().is_null());
/// ```
#[repr(transparent)]
pub struct DevicePtr<T> {
    addr: u64,
    _points_to: PhantomData<fn() -> T>,
}

impl<T> DevicePtr<T> {
    /// A pointer from a raw device address.
    pub const fn from_raw(addr: u64) -> Self {
        DevicePtr {
            addr,
            _points_to: PhantomData,
        }
    }
    /// The null pointer.
    pub const fn null() -> Self {
        Self::from_raw(0)
    }
    /// The raw device address.
    pub const fn addr(self) -> u64 {
        self.addr
    }
    /// Whether this is the null pointer.
    pub const fn is_null(self) -> bool {
        self.addr == 0
    }
    /// The pointer `count` elements further on (like C pointer arithmetic; wraps, never panics).
    pub const fn add(self, count: u64) -> Self {
        Self::from_raw(
            self.addr
                .wrapping_add(count.wrapping_mul(size_of::<T>() as u64)),
        )
    }
}

impl<T> Clone for DevicePtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for DevicePtr<T> {}
impl<T> PartialEq for DevicePtr<T> {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr
    }
}
impl<T> Eq for DevicePtr<T> {}
impl<T> std::fmt::Debug for DevicePtr<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DevicePtr({:#x})", self.addr)
    }
}
impl<T> Default for DevicePtr<T> {
    fn default() -> Self {
        Self::null()
    }
}
// SAFETY: a DevicePtr is a transparent u64; every bit pattern is a valid (if dangling) address.
unsafe impl<T: 'static> bytemuck::Zeroable for DevicePtr<T> {}
// SAFETY: as above; it holds no Rust reference, so copying its bytes is sound.
unsafe impl<T: 'static> bytemuck::Pod for DevicePtr<T> {}

// SAFETY: a C pointer is 8 bytes on every 64-bit CUDA target, like the u64 inside.
unsafe impl<T: DeviceType> DeviceType for DevicePtr<T> {
    fn c_decl(name: &str) -> String {
        if T::IS_ARRAY {
            T::c_decl(&format!("(*{name})"))
        } else {
            T::c_decl(&format!("*{name}"))
        }
    }
    fn c_dependencies(defs: &mut CDefinitions) {
        T::c_dependencies(defs);
    }
}

/// One field of a record, as the generated C struct and its layout checks need it.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// The field's name, the same in Rust and C.
    pub name: &'static str,
    /// Its byte offset (`offset_of!`).
    pub offset: usize,
    /// Its size in bytes.
    pub size: usize,
    /// Its C declaration, given its name.
    pub c_decl: fn(&str) -> String,
}

/// A struct declared with `#[grosr::record]` or `#[grosr::task]`: a C struct of the same name.
///
/// # Safety
/// `FIELDS` must list every field of `Self` in declaration order with its true offset and size,
/// and `Self` must be `#[repr(C)]` without padding.
pub unsafe trait Record: DeviceType {
    /// The struct's name in C (the Rust identifier).
    const C_NAME: &'static str;
    /// The fields, in order.
    const FIELDS: &'static [Field];
    /// Adds the definitions of the records that the fields contain.
    fn field_dependencies(defs: &mut CDefinitions);
}

/// A task type: a record plus the CUDA body that runs it, registered with
/// [`RuntimeBuilder::task`](crate::RuntimeBuilder::task).
///
/// # Safety
/// As for [`Record`]; in addition `size_of::<Self>() <= MAX_RECORD_BYTES`.
pub unsafe trait Task: Record {
    /// How many GPU threads run one task.
    const GRANULARITY: Granularity;
    /// The CUDA body.
    const BODY: CudaBody;
    /// A Rust body (`#[grosr::task(rust = ..)]`) as the function the CPU executor runs; `None`
    /// for a CUDA C body, which only a GPU can run.
    const CPU_BODY: Option<fn(&Self, &mut crate::body::Ctx)> = None;
    /// The Rust body never meets its other lanes (no collective, no barrier, `ctx` handed to
    /// no function, nothing lanes wait on each other with: no volatile read, no atomic): the
    /// CPU executor may run a warp or block task's lanes one after another instead of on a
    /// gang.
    const CPU_LANES_APART: bool = false;
}

/// The C definitions of a set of records, each once, every record after those it contains.
#[derive(Default, Debug)]
pub struct CDefinitions {
    defined: HashSet<&'static str>,
    forward: String,
    text: String,
}

impl CDefinitions {
    /// Adds the definition of `R` (and of what it contains) unless it is there already.
    pub fn define<R: Record>(&mut self) {
        if !self.defined.insert(R::C_NAME) {
            return;
        }
        // Forward declarations first, so a `DevicePtr<Self>` field (a linked list) compiles.
        let _ = writeln!(self.forward, "struct {};", R::C_NAME);
        R::field_dependencies(self);
        let name = R::C_NAME;
        let _ = writeln!(self.text, "struct {name} {{");
        for f in R::FIELDS {
            let _ = writeln!(self.text, "    {};", (f.c_decl)(f.name));
        }
        let _ = writeln!(self.text, "}};");
        let _ = writeln!(
            self.text,
            "static_assert(sizeof({name}) == {}, \"grosr: C layout of {name} differs from Rust\");",
            size_of::<R>()
        );
        for f in R::FIELDS {
            // GROSR_FIELD (cuda/grosr_layout.cuh) asserts the field's size, and its offset
            // where the compiler offers offsetof in constant expressions.
            let _ = writeln!(
                self.text,
                "GROSR_FIELD({name}, {}, {}, {});",
                f.name, f.offset, f.size
            );
        }
    }

    /// The definitions: forward declarations, then the structs with their layout asserts.
    pub fn source(&self) -> String {
        format!("{}\n{}", self.forward, self.text)
    }
}
