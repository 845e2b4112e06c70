/**
 * Startup baseline: the smallest program the same Bun compiles, with the same build flags as
 * `dist/crabbox`. `crabbox --help` is measured against it.
 */
console.log("hello world");
