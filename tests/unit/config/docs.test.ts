import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CONFIG_KEYS, type KeyDef } from "../../../src/config/keys.ts";
import { ExitCode } from "../../../src/core/errors.ts";

const root = join(import.meta.dir, "..", "..", "..");

test("docs/config.md documents every key, environment variable and flag", () => {
  const doc = readFileSync(join(root, "docs", "config.md"), "utf8");
  for (const [key, def] of Object.entries(CONFIG_KEYS) as [string, KeyDef][]) {
    expect({ key, documented: doc.includes(`\`${key}\``) }).toEqual({ key, documented: true });
    for (const name of def.env ?? [])
      expect({ name, documented: doc.includes(`\`${name}\``) }).toEqual({ name, documented: true });
    if (def.flag)
      expect({ flag: def.flag, documented: doc.includes(`\`--${def.flag}\``) }).toEqual({
        flag: def.flag,
        documented: true,
      });
  }
});

test("docs/exit-codes.md lists every exit code", () => {
  const doc = readFileSync(join(root, "docs", "exit-codes.md"), "utf8");
  for (const code of Object.values(ExitCode)) expect(doc).toMatch(new RegExp(`\\n\\| ${code}\\s+\\|`));
});
