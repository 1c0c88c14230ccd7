// A test graph node: out[node] = salt(node) + the sum of out[p] over its predecessors p.
// `out` starts at zero and every thread adds its share atomically, so lane, warp and block
// nodes compute the same value.
unsigned long long part = 0;
for (uint32_t e = task.pred_off[task.node] + ctx.lane(); e < task.pred_off[task.node + 1]; e += ctx.width())
    part += task.out[task.preds[e]];
if (ctx.lane() == 0) part += 0x9E3779B97F4A7C15ull * (task.node + 1);
if (part) atomicAdd(&task.out[task.node], part);
