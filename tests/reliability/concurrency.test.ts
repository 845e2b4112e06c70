/**
 * The slow fault suite, part 4: concurrency. Eight `crabbox run --id L` at once on one lease must
 * serialise on the lease's lock — sync and command together — so each run sees exactly its own
 * revision of a synced file: every process works from its own checkout (a different `rev.txt`),
 * and its command prints the file twice with a pause between. Any interleaving of another run's
 * sync would show up as a foreign or mixed revision. Twenty concurrent warmups get twenty distinct
 * slugs and valid claims.
 */
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { killChildren, microvmIdOf, type Result } from "../integration/provider-run-harness.ts";
import { startEmulator, type TestEmulator } from "../support/emulator.ts";
import { assertNoLeaks, type Box, box, printLeakTable } from "./support.ts";

setDefaultTimeout(180_000);

let emu: TestEmulator;
const boxes: Box[] = [];

beforeAll(async () => {
  emu = await startEmulator({ binary: "dist", testApi: true });
});
afterEach(() => killChildren());
afterAll(async () => {
  killChildren();
  for (const b of boxes) b.cleanup();
  await emu?.stop();
  printLeakTable("reliability-concurrency");
});

describe("concurrency", () => {
  test("8 concurrent run --id on one lease serialise: each run sees its own revision, start to end", async () => {
    const b = box(emu, boxes);
    b.write("rev.txt", "rev-warm\n");
    const warm = await b.crabbox(["warmup", "--slug", "shared"]);
    expect(warm.code).toBe(0);
    const microvm = microvmIdOf(warm.stdout);

    const checkouts = Array.from({ length: 8 }, (_, i) => {
      const dir = join(b.root, `checkout-${i}`);
      mkdirSync(dir);
      execFileSync("git", ["init", "-q"], { cwd: dir, env: b.env });
      writeFileSync(join(dir, "rev.txt"), `rev-${i}\n`);
      return dir;
    });
    const runs = checkouts.map((dir) =>
      b.start(
        ["run", "--id", "shared", "--reclaim", "--", "sh", "-c", "cat rev.txt; sleep 0.4; cat rev.txt"],
        {
          cwd: dir,
        },
      ),
    );
    const results: Result[] = await Promise.all(runs.map((run) => run.exited));
    results.forEach((result, i) => {
      expect({ run: i, stdout: result.stdout }).toEqual({ run: i, stdout: `rev-${i}\nrev-${i}\n` });
    });
    // They really ran at once: the lock made some of them wait, and said so once each.
    const waited = results.filter((result) => result.stderr.includes("waiting for lease"));
    expect(waited.length).toBeGreaterThan(0);
    for (const result of waited) expect(result.stderr.split("waiting for lease").length).toBe(2);
    await assertNoLeaks({
      scenario: "8 concurrent run --id on one lease (serialised, own revision each)",
      emu,
      boxes: [b],
      exits: results.map((result, i) => ({ label: `run ${i}`, actual: result.code, expected: 0 })),
      kept: [microvm],
    });
    const stop = await b.crabbox(["stop", "shared"]);
    await assertNoLeaks({
      scenario: "... then stop",
      emu,
      boxes: [b],
      exits: [{ label: "stop", actual: stop.code, expected: 0 }],
    });
  });

  test("20 concurrent warmups get 20 distinct slugs, 20 MicroVMs and 20 valid claims", async () => {
    const b = box(emu, boxes);
    const warmups = Array.from({ length: 20 }, () => b.start(["warmup"]));
    const results = await Promise.all(warmups.map((run) => run.exited));
    const slugs = results.map((result) => /slug=(\S+)/.exec(result.stdout)?.[1]);
    const microvms = results.map((result) => microvmIdOf(result.stdout));
    expect(new Set(slugs).size).toBe(20);
    expect(new Set(microvms).size).toBe(20);
    const claims = b.claims() as { slug: string; cloudID: string }[];
    expect(claims.map((claim) => claim.slug).sort()).toEqual([...slugs].sort() as string[]);
    await assertNoLeaks({
      scenario: "20 concurrent warmups (distinct slugs)",
      emu,
      boxes: [b],
      exits: results.map((result, i) => ({ label: `warmup ${i}`, actual: result.code, expected: 0 })),
      kept: microvms,
    });
    const stops = await Promise.all(slugs.map((slug) => b.crabbox(["stop", slug as string])));
    await assertNoLeaks({
      scenario: "... then 20 concurrent stops",
      emu,
      boxes: [b],
      exits: stops.map((result, i) => ({ label: `stop ${i}`, actual: result.code, expected: 0 })),
    });
  });
});
