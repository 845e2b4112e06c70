import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fingerprint, symlinkEntry } from "../../../src/protocol/fingerprint.ts";
import type { ManifestEntry } from "../../../src/protocol/types.ts";
import {
  forgetRemembered,
  forgetRememberedWorkdir,
  loadRemembered,
  rememberedFile,
  saveRemembered,
} from "../../../src/sync/remembered.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
function state(): string {
  const dir = mkdtempSync(join(tmpdir(), "crabbox-remembered-"));
  dirs.push(dir);
  return dir;
}

const entries: ManifestEntry[] = [
  { path: "a.txt", type: "file", mode: 0o644, size: 3, sha256: "a".repeat(64) },
  { path: "bin/run", type: "file", mode: 0o755, size: 10, sha256: "b".repeat(64) },
  symlinkEntry("link", "a.txt"),
];
const remote = { fingerprint: fingerprint(entries), entries };
const VM = "microvm-0123";
const WORKDIR = "/workspace/crabbox";

describe("the remembered manifest", () => {
  test("round-trips per MicroVM and workdir, in a 0600 file", async () => {
    const dir = state();
    await saveRemembered(dir, VM, WORKDIR, remote);
    expect(await loadRemembered(dir, VM, WORKDIR)).toEqual(remote);
    expect(await loadRemembered(dir, VM, "/workspace/other")).toBeUndefined();
    expect(await loadRemembered(dir, "microvm-other", WORKDIR)).toBeUndefined();
    expect(statSync(rememberedFile(dir, VM, WORKDIR)).mode & 0o777).toBe(0o600);
  });

  test("an empty workdir is remembered as `empty`", async () => {
    const dir = state();
    await saveRemembered(dir, VM, WORKDIR, { fingerprint: "empty", entries: [] });
    expect(await loadRemembered(dir, VM, WORKDIR)).toEqual({ fingerprint: "empty", entries: [] });
  });

  test("an edited or torn file is not trusted: its body no longer matches its checksum", async () => {
    const dir = state();
    await saveRemembered(dir, VM, WORKDIR, remote);
    const file = rememberedFile(dir, VM, WORKDIR);
    const good = readFileSync(file, "utf8");
    const [header, body] = good.split("\n") as [string, string];
    const edited = JSON.parse(body);
    edited[0][3] = 4; // a.txt's size
    for (const text of [
      `${header}\n${JSON.stringify(edited)}`,
      good.slice(0, good.length - 10),
      header,
      "[]",
      "",
    ]) {
      writeFileSync(file, text);
      expect(await loadRemembered(dir, VM, WORKDIR)).toBeUndefined();
    }
  });

  test("a well-formed file of another version, MicroVM or shape is ignored", async () => {
    const dir = state();
    await saveRemembered(dir, VM, WORKDIR, remote);
    const file = rememberedFile(dir, VM, WORKDIR);
    const [header, body] = readFileSync(file, "utf8").split("\n") as [string, string];
    const rewrite = (fields: Record<string, unknown>, entries: string = body) => {
      const checksum = createHash("sha256").update(entries).digest("hex");
      writeFileSync(file, `${JSON.stringify({ ...JSON.parse(header), checksum, ...fields })}\n${entries}`);
    };
    rewrite({ version: 1 });
    expect(await loadRemembered(dir, VM, WORKDIR)).toBeUndefined();
    rewrite({ microvmId: "microvm-other" });
    expect(await loadRemembered(dir, VM, WORKDIR)).toBeUndefined();
    rewrite({}, JSON.stringify([["a.txt", "f", 420, 3, "not-a-hash"]]));
    expect(await loadRemembered(dir, VM, WORKDIR)).toBeUndefined();
    rewrite({}, JSON.stringify([["a.txt", "x"]]));
    expect(await loadRemembered(dir, VM, WORKDIR)).toBeUndefined();
    rewrite({ fingerprint: "empty" });
    expect(await loadRemembered(dir, VM, WORKDIR)).toBeUndefined();
    rewrite({});
    expect(await loadRemembered(dir, VM, WORKDIR)).toEqual(remote);
  });

  test("forgetting one workdir or the whole MicroVM", async () => {
    const dir = state();
    await saveRemembered(dir, VM, WORKDIR, remote);
    await saveRemembered(dir, VM, "/workspace/b", remote);
    await forgetRememberedWorkdir(dir, VM, WORKDIR);
    expect(await loadRemembered(dir, VM, WORKDIR)).toBeUndefined();
    expect(await loadRemembered(dir, VM, "/workspace/b")).toEqual(remote);
    await forgetRemembered(dir, VM);
    expect(existsSync(join(dir, "synced", VM))).toBe(false);
    await forgetRemembered(dir, VM);
  });

  test("a MicroVM id that is not a plain name cannot reach outside the store", () => {
    const dir = state();
    const file = rememberedFile(dir, "../../etc", WORKDIR);
    expect(file.startsWith(join(dir, "synced"))).toBe(true);
    expect(file).not.toContain("..");
  });
});
