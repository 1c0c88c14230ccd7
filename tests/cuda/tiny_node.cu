// A node of a small test graph: out[node] = salt(node) + the sum of out[p] over the
// predecessors p named by bits 8.. of node_preds (node in bits 0-7). Lanes of a warp node split
// the predecessors and add atomically, so lane and warp nodes compute the same value.
const uint32_t node = task.node_preds & 0xFFu, preds = task.node_preds >> 8;
unsigned long long part = 0;
for (uint32_t p = ctx.lane(); p < 24; p += ctx.width())
    if (preds >> p & 1u) part += task.out[p];
if (ctx.lane() == 0) part += 0x9E3779B97F4A7C15ull * (node + 1);
if (part) atomicAdd(&task.out[node], part);
