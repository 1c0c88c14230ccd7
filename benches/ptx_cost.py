#!/usr/bin/env python3
"""Where a module's compile time goes, function by function (issue 19). No GPU needed.

NVRTC compiles a generated unit (`cargo bench --bench compile -- --dump DIR` writes them) to PTX
for compute_90; ptxas then compiles that PTX to sm_90 the way NVRTC would, and can be timed with
chosen functions' bodies replaced by `ret;`: ptxas drops what nothing calls, so the difference is
what those functions (and what only they call) cost. ptxas gives each kernel its own copy of
every function it calls, so a function called from several kernels costs once per kernel.

    python3 benches/ptx_cost.py sizes UNIT.cu             PTX lines per function, largest first
    python3 benches/ptx_cost.py time UNIT.cu [STUB ...]   ptxas time with the functions whose
                                                          mangled names match a STUB regex stubbed
    python3 benches/ptx_cost.py time UNIT.cu --all-over N [KEEP ...]
                                                          stub every function (kernels too) over
                                                          N PTX lines except those matching KEEP

Needs libnvrtc.so.13 (`pip install nvidia-cuda-nvrtc`; GROSR_NVRTC names the file, else the
loader finds it) and ptxas of the same CUDA release (`pip install nvidia-cuda-nvcc==13.0.88`;
GROSR_PTXAS names it, else PATH). Extra NVRTC options: GROSR_NVRTC_OPTIONS (space-separated).
"""
import ctypes
import os
import re
import subprocess
import sys
import time

# The options grosr compiles with (grosr/src/compile.rs, OPTIONS), for compute_90.
OPTIONS = ["-std=c++20", "-default-device", "-lineinfo", "-DGROSR=1", "-arch=compute_90"]
HEADER = re.compile(r"^\s*(?:\.visible\s+|\.weak\s+|\.extern\s+)*\.(func|entry)\s+(?:\(.*?\)\s*)?([\w$]+)")


def to_ptx(unit):
    """NVRTC: the unit's PTX (cached beside it as UNIT.ptx) and the seconds it took."""
    lib = ctypes.CDLL(os.environ.get("GROSR_NVRTC", "libnvrtc.so.13"))
    src = open(unit, "rb").read()
    prog = ctypes.c_void_p()
    if lib.nvrtcCreateProgram(ctypes.byref(prog), src, b"unit.cu", 0, None, None) != 0:
        sys.exit("nvrtcCreateProgram failed")
    opts = OPTIONS + os.environ.get("GROSR_NVRTC_OPTIONS", "").split()
    arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
    start = time.time()
    failed = lib.nvrtcCompileProgram(prog, len(opts), arr) != 0
    secs = time.time() - start
    if failed:
        n = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
        log = ctypes.create_string_buffer(n.value)
        lib.nvrtcGetProgramLog(prog, log)
        sys.exit(log.value.decode(errors="replace")[:4000])
    n = ctypes.c_size_t()
    lib.nvrtcGetPTXSize(prog, ctypes.byref(n))
    buf = ctypes.create_string_buffer(n.value)
    lib.nvrtcGetPTX(prog, buf)
    return buf.value.decode().split("\n"), secs


def functions(ptx):
    """(kind, mangled name, first line, header end, last line) of every function defined."""
    out, i = [], 0
    while i < len(ptx):
        m = HEADER.match(ptx[i])
        if m:
            j = i
            while j < len(ptx) and ptx[j].strip() != "{" and not ptx[j].rstrip().endswith(";"):
                j += 1
            if j < len(ptx) and ptx[j].strip() == "{":
                depth, k = 0, j
                while True:
                    depth += ptx[k].count("{") - ptx[k].count("}")
                    if depth == 0:
                        break
                    k += 1
                out.append((m.group(1), m.group(2), i, j, k))
                i = k
        i += 1
    return out


def ptxas_seconds(ptx_lines, path):
    with open(path, "w") as f:
        f.write("\n".join(ptx_lines))
    ptxas = os.environ.get("GROSR_PTXAS", "ptxas")
    start = time.time()
    subprocess.run([ptxas, "-arch=sm_90", "-O3", path, "-o", path + ".cubin"], check=True)
    return time.time() - start


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("sizes", "time"):
        sys.exit(__doc__)
    cmd, unit, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    ptx, nvvm = to_ptx(unit)
    funcs = functions(ptx)
    print(f"NVRTC to PTX: {nvvm:.1f} s, {len(ptx)} lines, {len(funcs)} functions")
    if cmd == "sizes":
        for kind, name, first, _, last in sorted(funcs, key=lambda f: f[2] - f[4])[:30]:
            print(f"{last - first:8d}  {kind:5s} {name}")
        return
    over, patterns = None, rest            # STUB regexes, or with --all-over the KEEP ones
    if rest[:1] == ["--all-over"]:
        over, patterns = int(rest[1]), rest[2:]
    stubbed, out, at = [], [], 0
    for kind, name, first, body, last in funcs:
        if over is not None:
            stub = last - first > over and not any(re.search(k, name) for k in patterns)
        else:
            stub = kind == "func" and any(re.search(s, name) for s in patterns)
        if stub:
            out += ptx[at:body] + ["{", "\tret;", "}"]
            at = last + 1
            stubbed.append(name)
    out += ptx[at:]
    for name in stubbed:
        print(f"  stubbed {name}")
    print(f"ptxas: {ptxas_seconds(out, unit + '.stubbed.ptx'):.1f} s")


if __name__ == "__main__":
    main()
