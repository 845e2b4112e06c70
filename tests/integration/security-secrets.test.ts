/**
 * Secrets: the data-plane auth token and the values of forwarded environment variables must never
 * appear in anything crabbox itself writes — stdout, stderr (with --debug too), the timing line,
 * the --json-summary file, claims, caches, locks or any other file under the sandbox — except the
 * one place a token may live, the per-MicroVM token cache. What the remote command prints is the
 * user's business, so the command here only compares the value, never echoes it.
 *
 * Every token the CLI sends is captured by a pass-through proxy in front of the emulator, so the
 * grep knows every token that existed (including the ones that expired and were refreshed).
 */
import { afterAll, afterEach, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { type HostileProxy, hostileProxy } from "../reliability/hostile-proxy.ts";
import { assertNoLeaks, type Box, box, printLeakTable } from "../reliability/support.ts";
import { startEmulator, type TestEmulator } from "../support/emulator.ts";
import { killChildren, microvmIdOf, type Result, setFaults } from "./provider-run-harness.ts";

setDefaultTimeout(90_000);

let emu: TestEmulator;
let proxy: HostileProxy;
const boxes: Box[] = [];

beforeAll(async () => {
  emu = await startEmulator({ binary: "dist", testApi: true });
  proxy = hostileProxy(emu);
});
afterEach(() => killChildren());
afterAll(async () => {
  killChildren();
  proxy?.stop();
  for (const b of boxes) b.cleanup();
  await emu?.stop();
  printLeakTable("security-secrets");
});

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stat = statSync(path, { throwIfNoEntry: false });
    if (stat?.isDirectory()) out.push(...filesUnder(path));
    else if (stat?.isFile()) out.push(path);
  }
  return out;
}

test("the token and forwarded values appear nowhere crabbox writes but the token cache", async () => {
  const b = box(emu, boxes);
  b.env.CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT = proxy.url;
  const secret = `s3cr3t-${randomBytes(12).toString("hex")}`;
  const prefixed = `pfx-${randomBytes(12).toString("hex")}`;
  b.env.MY_API_TOKEN = secret;
  b.env.DEPLOY_KEY_ONE = prefixed;
  b.write("proof.txt", "synced\n");
  // The command proves the values arrived by their hashes: it never prints (or contains) them.
  const check = 'sleep 1.5; printf %s "$MY_API_TOKEN" | sha256sum; printf %s "$DEPLOY_KEY_ONE" | sha256sum';
  const sha = (text: string) => createHash("sha256").update(text).digest("hex");
  const summary = join(b.root, "summary.json");
  const outputs: [string, Result][] = [];
  const run = async (label: string, args: string[], env: Record<string, string> = {}) => {
    const result = await b.crabbox(args, { env });
    outputs.push([label, result]);
    return result;
  };

  // The first token lives 1 s and the stream is cut after it: refresh and reattach paths run too.
  await setFaults(emu, [
    "token-ttl-s=1@CreateMicrovmAuthToken,count=1",
    "cut-stream-after=150@/v1/exec,count=1",
  ]);
  const kept = await run("run --keep", [
    "--debug",
    "run",
    "--keep",
    "--slug",
    "secrets",
    "--allow-env",
    "MY_API_TOKEN",
    "--allow-env",
    "DEPLOY_KEY_*",
    "--timing-json",
    "--json-summary",
    summary,
    "--",
    "sh",
    "-c",
    check,
  ]);
  await setFaults(emu, []);
  expect(kept.code).toBe(0);
  expect(kept.stdout).toBe(`${sha(secret)}  -\n${sha(prefixed)}  -\n`);
  // --debug really is on: the token refresh and the reattach are narrated.
  expect(kept.stderr).toContain("debug: ");
  const microvm = microvmIdOf(kept.stderr.split("\nleased ")[1] as string);
  const env = { CRABBOX_ENV_ALLOW: "MY_API_TOKEN,DEPLOY_KEY_*" };
  await run("run --id", ["run", "--id", "secrets", "--debug", "--timing-json", "--", "true"], env);
  await run("status", ["--debug", "status", "--id", "secrets", "--json"]);
  await run("list", ["--debug", "list", "--json"]);
  await run("doctor", ["--debug", "doctor", "--id", "secrets", "--json"]);
  await run("pause", ["--debug", "pause", "secrets"]);
  await run("resume", ["--debug", "resume", "secrets"]);
  await run("config show", ["--debug", "config", "show", "--json"], env);
  // A failing run prints its errors with --debug stacks.
  await setFaults(emu, ["runner-crash@/v1/exec,count=1"]);
  await run("failing run", ["--debug", "run", "--allow-env", "MY_API_TOKEN", "--", "sleep", "5"]);
  await setFaults(emu, []);

  const tokens = [...new Set(proxy.seen.flatMap((seen) => (seen.token ? [seen.token] : [])))];
  expect(tokens.length).toBeGreaterThan(2);
  const needles = [
    secret,
    prefixed,
    ...tokens.flatMap((token) => [token, token.slice(token.length / 2 - 12, token.length / 2 + 12)]),
  ];

  // Positive control: the token cache holds the live token, so the grep below would see one.
  const cacheFile = join(b.stateDir, "tokens", `${microvm}.json`);
  const cached = JSON.parse(readFileSync(cacheFile, "utf8")) as { token: string };
  expect(tokens).toContain(cached.token);

  const leaks: string[] = [];
  for (const [label, result] of outputs) {
    for (const [stream, text] of [
      ["stdout", result.stdout],
      ["stderr", result.stderr],
    ] as const) {
      if (needles.some((needle) => text.includes(needle))) leaks.push(`${label} ${stream}`);
    }
  }
  for (const file of filesUnder(b.root)) {
    if (file.startsWith(join(b.stateDir, "tokens"))) continue;
    const text = readFileSync(file, "latin1");
    if (needles.some((needle) => text.includes(needle))) leaks.push(relative(b.root, file));
  }
  expect(leaks).toEqual([]);
  expect(JSON.parse(readFileSync(summary, "utf8"))).toMatchObject({ exitCode: 0 });

  const stop = await run("stop", ["--debug", "stop", "secrets"]);
  expect(stop.stderr).not.toContain(cached.token);
  await assertNoLeaks({
    scenario: "secrets: token + forwarded values grepped in every output and file",
    emu,
    boxes: [b],
    exits: outputs.map(([label, result]) => ({
      label,
      actual: result.code,
      expected: label === "failing run" ? 1 : 0,
    })),
  });
});
