// Body of FromFile: doubles every element.
for (uint32_t i = ctx.lane(); i < task.n; i += ctx.width()) {
    task.x[i] *= 2.0f;
}
