// grosr device runtime: what the translation of Rust task bodies calls (grosr-macros/src/body.rs;
// the subset is documented in grosr/src/body.rs). C++ overloads and templates give each
// operation the meaning Rust gives it, with types only the C++ compiler knows:
// * an operation's type is its operands' common type, where an unsuffixed literal (a C `int`
//   or `double` here) takes the other operand's type, as Rust infers it (rustc has checked
//   that the two Rust types agree, so a C `int` beside another integer type, or a `double`
//   beside a `float`, can only be such a literal);
// * narrow integers wrap in their own width (C would promote them to `int`);
// * `!` of an integer is its complement, shift amounts are masked to the width, float `%` is
//   `fmod`, float-to-integer `as` saturates (NaN is 0).
// Nothing here is instantiated unless a Rust body uses it.

namespace grosr {
namespace rs {

template <class T> struct is_float { static constexpr bool value = false; };
template <> struct is_float<float> { static constexpr bool value = true; };
template <> struct is_float<double> { static constexpr bool value = true; };

// `T` without reference or const (decltype of an lvalue is a reference).
template <class T> struct bare { typedef T type; };
template <class T> struct bare<T&> { typedef typename bare<T>::type type; };
template <class T> struct bare<const T> { typedef T type; };
template <class T> struct bare<const T&> { typedef T type; };

// The type Rust gives `a op b` (see above).
template <class A, class B> struct common { typedef A type; };
template <class B> struct common<int, B> { typedef B type; };
template <class A> struct common<A, int> { typedef A type; };
template <> struct common<int, int> { typedef int type; };
template <> struct common<double, float> { typedef float type; };
template <> struct common<float, double> { typedef float type; };
template <> struct common<int, float> { typedef float type; };   // never from rustc-checked code
template <> struct common<float, int> { typedef float type; };
template <> struct common<int, double> { typedef double type; };
template <> struct common<double, int> { typedef double type; };
template <class A, class B>
using common_t = typename common<typename bare<A>::type, typename bare<B>::type>::type;

// The unsigned type of an integer's width, for wrapping arithmetic without signed overflow.
template <class T> struct unsigned_of { typedef T type; };
template <> struct unsigned_of<signed char> { typedef unsigned char type; };
template <> struct unsigned_of<short> { typedef unsigned short type; };
template <> struct unsigned_of<int> { typedef unsigned int type; };
template <> struct unsigned_of<long long> { typedef unsigned long long type; };

template <class T> __device__ __forceinline__ T wrap_add(T a, T b) {
    typedef typename unsigned_of<T>::type U;
    return is_float<T>::value ? a + b : (T)(U)((U)a + (U)b);
}
template <class T> __device__ __forceinline__ T wrap_sub(T a, T b) {
    typedef typename unsigned_of<T>::type U;
    return is_float<T>::value ? a - b : (T)(U)((U)a - (U)b);
}
template <class T> __device__ __forceinline__ T wrap_mul(T a, T b) {
    typedef typename unsigned_of<T>::type U;
    // In at least `unsigned int`: two promoted `unsigned short`s would multiply as `int`.
    typedef decltype((U)0 * 1u) W;
    return is_float<T>::value ? a * b : (T)(U)((W)(U)a * (W)(U)b);
}

template <class A, class B> __device__ __forceinline__ common_t<A, B> add(A a, B b) {
    typedef common_t<A, B> T;
    return wrap_add((T)a, (T)b);
}
template <class A, class B> __device__ __forceinline__ common_t<A, B> sub(A a, B b) {
    typedef common_t<A, B> T;
    return wrap_sub((T)a, (T)b);
}
template <class A, class B> __device__ __forceinline__ common_t<A, B> mul(A a, B b) {
    typedef common_t<A, B> T;
    return wrap_mul((T)a, (T)b);
}
template <class A, class B> __device__ __forceinline__ common_t<A, B> div(A a, B b) {
    typedef common_t<A, B> T;
    return (T)((T)a / (T)b);
}
// `a.div_ceil(b)` (unsigned, as Rust has it): the quotient rounded up, without `a + b - 1`'s
// overflow.
template <class A, class B> __device__ __forceinline__ common_t<A, B> div_ceil(A a, B b) {
    typedef common_t<A, B> T;
    return (T)((T)a / (T)b + ((T)a % (T)b != 0 ? 1 : 0));
}
template <class T> __device__ __forceinline__ T rem_of(T a, T b) { return (T)(a % b); }
__device__ __forceinline__ float rem_of(float a, float b) { return fmodf(a, b); }
__device__ __forceinline__ double rem_of(double a, double b) { return fmod(a, b); }
template <class A, class B> __device__ __forceinline__ common_t<A, B> rem(A a, B b) {
    typedef common_t<A, B> T;
    return rem_of((T)a, (T)b);
}
template <class A, class B> __device__ __forceinline__ common_t<A, B> bit_and(A a, B b) {
    typedef common_t<A, B> T;
    return (T)((T)a & (T)b);
}
template <class A, class B> __device__ __forceinline__ common_t<A, B> bit_or(A a, B b) {
    typedef common_t<A, B> T;
    return (T)((T)a | (T)b);
}
template <class A, class B> __device__ __forceinline__ common_t<A, B> bit_xor(A a, B b) {
    typedef common_t<A, B> T;
    return (T)((T)a ^ (T)b);
}
// A shift has its left operand's type; the amount is masked to the width (Rust's release build).
template <class A, class B> __device__ __forceinline__ A shl(A a, B k) {
    typedef typename unsigned_of<A>::type U;
    return (A)(U)((U)a << ((unsigned)k & (8 * sizeof(A) - 1)));
}
template <class A, class B> __device__ __forceinline__ A shr(A a, B k) {
    return (A)(a >> ((unsigned)k & (8 * sizeof(A) - 1)));
}
// `a.max(b)` / `a.min(b)` in the common type; for floats fmaxf/fminf, which like Rust return
// the other operand when one is NaN.
template <class T> __device__ __forceinline__ T max_same(T a, T b) { return a > b ? a : b; }
__device__ __forceinline__ float max_same(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double max_same(double a, double b) { return fmax(a, b); }
template <class T> __device__ __forceinline__ T min_same(T a, T b) { return a < b ? a : b; }
__device__ __forceinline__ float min_same(float a, float b) { return fminf(a, b); }
__device__ __forceinline__ double min_same(double a, double b) { return fmin(a, b); }
template <class A, class B> __device__ __forceinline__ common_t<A, B> max_of(A a, B b) {
    typedef common_t<A, B> T;
    return max_same((T)a, (T)b);
}
template <class A, class B> __device__ __forceinline__ common_t<A, B> min_of(A a, B b) {
    typedef common_t<A, B> T;
    return min_same((T)a, (T)b);
}

// `a.powf(b)` and `a.mul_add(b, c)` in the receiver's type, which rustc gives the arguments too:
// an unsuffixed literal argument (a C `double`) would make a `float`'s `pow` / `fma` ambiguous.
template <class A, class B> __device__ __forceinline__ A powf_of(A a, B b) { return pow(a, (A)b); }
template <class A, class B, class C> __device__ __forceinline__ A mul_add_of(A a, B b, C c) {
    return fma(a, (A)b, (A)c);
}

// Comparisons in the operands' common type (`x == 0.1` for a float `x` compares floats).
template <class A, class B> __device__ __forceinline__ bool eq(A a, B b) { typedef common_t<A, B> T; return (T)a == (T)b; }
template <class A, class B> __device__ __forceinline__ bool ne(A a, B b) { typedef common_t<A, B> T; return (T)a != (T)b; }
template <class A, class B> __device__ __forceinline__ bool lt(A a, B b) { typedef common_t<A, B> T; return (T)a < (T)b; }
template <class A, class B> __device__ __forceinline__ bool le(A a, B b) { typedef common_t<A, B> T; return (T)a <= (T)b; }
template <class A, class B> __device__ __forceinline__ bool gt(A a, B b) { typedef common_t<A, B> T; return (T)a > (T)b; }
template <class A, class B> __device__ __forceinline__ bool ge(A a, B b) { typedef common_t<A, B> T; return (T)a >= (T)b; }

// `l op= r`: the place evaluated once. Where the value calls something (the macro decides),
// `grosr::rs::op_to(l) = r`, which evaluates the place after the value, as Rust does for a
// compound assignment of primitives (C++17 sequences an assignment's right operand before its
// left, an overloaded `=` too); else `op_assign(l, r)`, a call (its arguments in no set order,
// which a value that calls nothing cannot tell).
#define GROSR_RS_ASSIGN(name, op) \
    template <class L, class R> __device__ __forceinline__ void name##_assign(L& l, R r) { l = (L)op(l, r); } \
    template <class L> struct name##_place { \
        L& l; \
        template <class R> __device__ __forceinline__ void operator=(R r) && { l = (L)op(l, r); } \
    }; \
    template <class L> __device__ __forceinline__ name##_place<L> name##_to(L& l) { return {l}; }
GROSR_RS_ASSIGN(add, add)
GROSR_RS_ASSIGN(sub, sub)
GROSR_RS_ASSIGN(mul, mul)
GROSR_RS_ASSIGN(div, div)
GROSR_RS_ASSIGN(rem, rem)
GROSR_RS_ASSIGN(bit_and, bit_and)
GROSR_RS_ASSIGN(bit_or, bit_or)
GROSR_RS_ASSIGN(bit_xor, bit_xor)
GROSR_RS_ASSIGN(shl, shl)
GROSR_RS_ASSIGN(shr, shr)
#undef GROSR_RS_ASSIGN

// `!`: logical for a bool, the complement in the integer's own width otherwise.
__device__ __forceinline__ bool not_of(bool b) { return !b; }
template <class T> __device__ __forceinline__ T not_of(T x) { return (T)~x; }
template <class T> __device__ __forceinline__ T neg(T x) {
    typedef typename unsigned_of<T>::type U;
    return (T)(U)((U)0 - (U)x);                  // wraps at MIN, as a release build does
}
__device__ __forceinline__ float neg(float x) { return -x; }
__device__ __forceinline__ double neg(double x) { return -x; }

// `p.add(n)` of a `DevicePtr<T>`: `n` elements on. Pointers only, so that an `add` of anything
// else (a number's, `std::ops::Add` in scope) is a build error rather than pointer arithmetic.
template <class T> __device__ __forceinline__ T* ptr_add(T* p, uint64_t n) { return p + n; }

// `x.abs()` in x's own type.
template <class T> __device__ __forceinline__ T abs_of(T x) { return x < (T)0 ? neg(x) : x; }
__device__ __forceinline__ float abs_of(float x) { return fabsf(x); }
__device__ __forceinline__ double abs_of(double x) { return fabs(x); }

// `x as T`: C's conversion, but a float into an integer saturates and NaN is 0 (as in Rust).
template <class T, bool FromFloat> struct cast_impl {
    template <class F> __device__ static T of(F x) { return (T)x; }
};
template <class T> struct cast_impl<T, true> {
    template <class F> __device__ static T of(F x) {
        // `if constexpr`: a float target (`x as f64`) must not instantiate the integer limits.
        if constexpr (is_float<T>::value) {
            return (T)x;
        } else {
            if (x != x) return (T)0;
            typedef typename unsigned_of<T>::type U;
            const bool is_signed = (T)-1 < (T)0;
            const T hi = is_signed ? (T)((U)~(U)0 >> 1) : (T)~(U)0;   // the type's MAX
            const T lo = is_signed ? (T)(-hi - 1) : (T)0;             // and MIN
            if (x <= (F)lo) return lo;
            if (x >= (F)hi) return hi;
            return (T)x;
        }
    }
};
template <class T, class F> __device__ __forceinline__ T cast(F x) {
    return cast_impl<T, is_float<F>::value>::of(x);
}

// A `let` without a type: its value. An array does not compile here (a function cannot return
// one), where `auto` would silently turn it into a pointer to the original.
template <class T> __device__ __forceinline__ T let(const T& x) { return x; }

// Sets a record field (an array field element by element).
template <class T, class V> __device__ __forceinline__ void set(T& field, const V& value) { field = value; }
template <class T, unsigned N> __device__ __forceinline__ void set(T (&field)[N], const T (&value)[N]) {
    for (unsigned i = 0; i < N; ++i) field[i] = value[i];
}

// `ctx.read_volatile(p, i)`: a load the compiler neither drops, repeats nor serves from an
// earlier one, and not from a stale L1 copy (a value other SMs change as this one runs).
template <class T> __device__ __forceinline__ T read_volatile(const T* p) {
    return *(const volatile T*)p;
}

// `x.count_ones()`: set bits, a `u32` whatever the width (narrow types zero-extended).
__device__ __forceinline__ uint32_t count_ones(unsigned long long x) { return (uint32_t)__popcll(x); }
__device__ __forceinline__ uint32_t count_ones(long long x) { return (uint32_t)__popcll((unsigned long long)x); }
__device__ __forceinline__ uint32_t count_ones(unsigned long x) { return (uint32_t)__popcll((unsigned long long)x); }
__device__ __forceinline__ uint32_t count_ones(long x) { return (uint32_t)__popcll((unsigned long long)x); }
__device__ __forceinline__ uint32_t count_ones(uint32_t x) { return (uint32_t)__popc(x); }
__device__ __forceinline__ uint32_t count_ones(int32_t x) { return (uint32_t)__popc((uint32_t)x); }
__device__ __forceinline__ uint32_t count_ones(uint16_t x) { return (uint32_t)__popc((uint32_t)x); }
__device__ __forceinline__ uint32_t count_ones(int16_t x) { return (uint32_t)__popc((uint32_t)(uint16_t)x); }
__device__ __forceinline__ uint32_t count_ones(uint8_t x) { return (uint32_t)__popc((uint32_t)x); }
__device__ __forceinline__ uint32_t count_ones(int8_t x) { return (uint32_t)__popc((uint32_t)(uint8_t)x); }

}  // namespace rs
}  // namespace grosr

// The granularity that a Rust body's or helper's calls of helpers pass (`grosr_call_<name>`,
// whose static_assert a granular helper's calls must pass): bodies and granular helpers declare
// their own; plain helpers and CUDA code see this one.
constexpr grosr::Gran grosr_granularity = grosr::GROSR_NO_GRAN;
