#!/usr/bin/env python3
"""PyTorch's softmax(relu(x), -1) on the report's ReLU+Softmax shapes: the peer row.

Times each call the way grosr's report times a strategy: host clock around the operation and a
synchronize, warm-up first, median of many. Prints one JSON object on stdout; anything else goes
to stderr. Exits 0 with "available": false when torch or a GPU is missing.

    python3 benches/torch_peer.py [--quick] [--no-compile]
"""
import json
import statistics
import sys
import time

SHAPES = [(5000, 256), (100_000, 128), (1000, 4096), (10_000, 1024), (100, 65_536)]


def timed(fn, x, reps, warmup):
    import torch
    for _ in range(warmup):
        fn(x)
    torch.cuda.synchronize()
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        fn(x)
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - t) * 1e6)
    return statistics.median(samples)


def main():
    quick = "--quick" in sys.argv
    compile_too = "--no-compile" not in sys.argv
    out = {"available": False, "shapes": []}
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure means "no peer"
        out["reason"] = f"torch not importable: {e}"
        print(json.dumps(out))
        return
    if not torch.cuda.is_available():
        out["reason"] = "torch sees no CUDA device"
        print(json.dumps(out))
        return
    out.update(available=True, torch=torch.__version__, device=torch.cuda.get_device_name(0))
    reps, warmup = (50, 10) if quick else (300, 30)

    def eager(x):
        return torch.softmax(torch.relu(x), -1)

    compiled = None
    if compile_too:
        try:
            compiled = torch.compile(eager)
        except Exception as e:  # noqa: BLE001
            out["compile_error"] = str(e)
    for rows, length in SHAPES:
        x = torch.rand(rows, length, device="cuda") * 8 - 4
        ref = torch.softmax(torch.relu(x.double()), -1)
        row = {"rows": rows, "len": length}
        y = eager(x)
        row["eager_max_rel_err"] = float(((y.double() - ref).abs() / ref).max())
        row["eager_us"] = timed(eager, x, reps, warmup)
        if compiled is not None:
            try:
                compiled(x)  # compiles outside the timing
                row["compiled_us"] = timed(compiled, x, reps, warmup)
            except Exception as e:  # noqa: BLE001
                out["compile_error"] = str(e)[:500]
                compiled = None
        print(f"torch_peer: {rows}x{length} {row}", file=sys.stderr)
        out["shapes"].append(row)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
