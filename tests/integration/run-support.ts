import { expect } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { RunSummary } from "../../src/core/run-summary.ts";
import type { TestEmulator } from "../support/emulator.ts";
import { validate } from "../support/json-schema.ts";
import { liveMicrovms, type Sandbox } from "./provider-run-harness.ts";

/**
 * Shared checks of the `run-*` integration tests: a `--json-summary` file read and validated
 * against docs/run-summary.schema.json, and "nothing left running" as the emulator sees it; and
 * the one set-up several of them share, a retained lease already holding remote files.
 */

const schema = JSON.parse(
  readFileSync(join(import.meta.dir, "../../docs/run-summary.schema.json"), "utf8"),
) as Record<string, never>;

/** The summary file, which must exist and validate against its schema. */
export function readSummary(file: string): RunSummary {
  expect(existsSync(file)).toBe(true);
  const summary = JSON.parse(readFileSync(file, "utf8")) as RunSummary;
  expect(validate(schema, summary)).toEqual([]);
  return summary;
}

/**
 * Warms up the retained lease `slug` and runs `script` on it (after a sync), both succeeding: what
 * a test on a lease that already holds remote files starts from.
 */
export async function warmLeaseWith(b: Sandbox, slug: string, script: string): Promise<void> {
  expect((await b.crabbox(["warmup", "--slug", slug])).code).toBe(0);
  expect((await b.crabbox(["run", "--id", slug, "--", "sh", "-c", script])).code).toBe(0);
}

/** Polls until no MicroVM is live (terminations are asynchronous on AWS too). */
export async function expectNoLiveMicrovms(emu: TestEmulator): Promise<void> {
  for (let i = 0; i < 200 && (await liveMicrovms(emu)).length > 0; i++) await Bun.sleep(50);
  expect(await liveMicrovms(emu)).toEqual([]);
}

/** Polls until every process of every VM (runners and what they started) is gone. */
export async function expectNoVmProcesses(emu: TestEmulator): Promise<void> {
  for (let i = 0; i < 200 && emu.vmProcesses().length > 0; i++) await Bun.sleep(50);
  expect(emu.vmProcesses()).toEqual([]);
}

/** The emulator log shows a successful TerminateMicrovm of this MicroVM. */
export function expectTerminatedInLog(emu: TestEmulator, microvmId: string): void {
  const terminations = emu
    .records()
    .filter((r) => r.plane === "control" && r.op === "TerminateMicrovm" && r.path.includes(microvmId));
  expect(terminations.some((r) => r.status >= 200 && r.status < 300)).toBe(true);
}
