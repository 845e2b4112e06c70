import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../../../scripts/bun-runtime.ts";
import { commands } from "../../../src/commands/_table.ts";

const doc = (name: string) => readFileSync(join(repoRoot, "docs", name), "utf8");

test("docs/commands.md has a row for every visible command and every image subcommand", async () => {
  const text = doc("commands.md");
  for (const [name, load] of Object.entries(commands)) {
    const command = await load();
    const meta = typeof command.meta === "function" ? await command.meta() : await command.meta;
    if (meta?.hidden) continue;
    expect(text, name).toMatch(new RegExp(`(\\| |/ )\`${name}[ \`]`));
  }
  for (const sub of ["build", "list", "status"]) expect(text).toContain(`\`image ${sub}`);
});

test("the docs link each other and the schema where a reader looks", () => {
  expect(doc("getting-started.md")).toContain("schema/crabbox.schema.json");
  for (const name of ["getting-started.md", "commands.md", "troubleshooting.md", "json-outputs.md"]) {
    for (const [, target] of doc(name).matchAll(/\]\(([\w-]+\.md)(#[\w-]+)?\)/g)) {
      expect(
        () => readFileSync(join(repoRoot, "docs", target as string)),
        `${name} -> ${target}`,
      ).not.toThrow();
    }
  }
});

test("the bandwidth page states 4 MB/s at the default 2 GB size", () => {
  expect(doc("performance-bandwidth.md")).toContain("**2 GB / 1 (8 GB / 4), default** | **4 MB/s**");
});
