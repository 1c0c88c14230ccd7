// Body of AllocRounds (one lane) and AllocRoundsWarp (a warp; lane l runs rounds + l % 5 rounds).
// stats: [0] null allocations, [1] misaligned blocks, [2] blocks whose contents changed, [3] frees.
const uint32_t rounds = ctx.width() == 1 ? task.rounds : task.rounds + ctx.lane() % 5;
const uint32_t tag = task.tag + (ctx.lane() << 22);
for (uint32_t r = 0; r < rounds; ++r) {
    const uint32_t words = 4 + (tag + r * 37u) % 300u;
    volatile uint32_t* p = ctx.alloc_n<uint32_t>(words);
    if (!p) { atomicAdd(&task.stats[0], 1u); continue; }
    if ((unsigned long long)p & 15) atomicAdd(&task.stats[1], 1u);
    for (uint32_t i = 0; i < words; ++i) p[i] = tag + r + i;
    for (uint32_t i = 0; i < words; ++i) {
        if (p[i] != tag + r + i) { atomicAdd(&task.stats[2], 1u); break; }
    }
    ctx.free((void*)p);
    atomicAdd(&task.stats[3], 1u);
}
