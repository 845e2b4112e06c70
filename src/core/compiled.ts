/**
 * Whether this process is the compiled `crabbox` binary (`bun build --compile`) rather than
 * `bun src/cli.ts`, `bun test` or Deno. Bun serves a compiled binary's entry from its embedded
 * `/$bunfs/` filesystem (`B:/~BUN/` on Windows), whatever the file was named or where it was
 * copied. `Bun.main`, not `import.meta`: the binary is a CommonJS bundle, whose `import.meta.path`
 * and `import.meta.url` are the paths the modules had on the build machine.
 */
export function isCompiledBinary(): boolean {
  const main = (globalThis as { Bun?: { main?: string } }).Bun?.main ?? "";
  return main.startsWith("/$bunfs/") || main.startsWith("B:/~BUN/");
}
