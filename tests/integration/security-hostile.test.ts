/**
 * Hostile inputs on the CLI side, against the compiled binary: a control plane that hands out an
 * endpoint outside the policy, a data plane that redirects to another origin, exec streams that
 * break the protocol, and repository config that tries to take what is not a repository's to take.
 * Each must end in a clear error and touch nothing it should not: the leak check after every
 * scenario (tests/reliability/support.ts) proves no MicroVM, process, lock, claim, token or temp
 * file is left behind.
 */
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type CountingListener,
  countingListener,
  type HostileProxy,
  hostileProxy,
  ndjson,
  rawTar,
  startedLine,
} from "../reliability/hostile-proxy.ts";
import { assertNoLeaks, type Box, box, printLeakTable } from "../reliability/support.ts";
import { startEmulator, type TestEmulator } from "../support/emulator.ts";
import { killChildren, microvmIdOf, setFaults } from "./provider-run-harness.ts";

setDefaultTimeout(60_000);

let emu: TestEmulator;
let proxy: HostileProxy;
let listener: CountingListener;
const boxes: Box[] = [];

beforeAll(async () => {
  emu = await startEmulator({ binary: "dist", testApi: true });
  proxy = hostileProxy(emu);
  listener = countingListener();
});
afterEach(async () => {
  killChildren();
  proxy.rules = [];
  await setFaults(emu, []);
});
afterAll(async () => {
  killChildren();
  proxy?.stop();
  listener?.stop();
  for (const b of boxes) b.cleanup();
  await emu?.stop();
  printLeakTable("security-hostile");
});

/** Control-plane operations the emulator logged since `from`. */
function controlOps(from: number): string[] {
  return emu
    .records()
    .slice(from)
    .filter((record) => record.plane === "control")
    .map((record) => record.op ?? "");
}

describe("an endpoint outside the policy is refused before any token is minted", () => {
  const endpoints: [string, string][] = [
    ["another region", "abcd.lambda-microvm.eu-west-1.on.aws"],
    ["a non-AWS host", "evil.example.com"],
    ["plain http", "http://abcd.lambda-microvm.us-east-1.on.aws"],
    ["a port", "abcd.lambda-microvm.us-east-1.on.aws:8443"],
    ["a path", "abcd.lambda-microvm.us-east-1.on.aws/steal"],
  ];
  for (const [what, endpoint] of endpoints) {
    test(`${what}: ${endpoint}`, async () => {
      const b = box(emu, boxes);
      b.write("secret.txt", "source code\n");
      await setFaults(emu, [`endpoint=${endpoint}`]);
      const from = emu.records().length;
      const result = await b.crabbox(["run", "--", "cat", "secret.txt"]);
      expect(result.stderr).toContain("error: invalid AWS Lambda MicroVM endpoint for region us-east-1");
      expect(result.stdout).toBe("");
      const ops = controlOps(from);
      expect(ops).toContain("RunMicrovm");
      expect(ops).toContain("TerminateMicrovm");
      expect(ops).not.toContain("CreateMicrovmAuthToken");
      expect(
        emu
          .records()
          .slice(from)
          .filter((record) => record.plane === "data"),
      ).toEqual([]);
      await assertNoLeaks({
        scenario: `endpoint ${what} (${endpoint})`,
        emu,
        boxes: [b],
        exits: [{ label: "run", actual: result.code, expected: 1 }],
      });
    });
  }
});

describe("a redirect to another origin never receives a request", () => {
  for (const path of ["/health", "/v1/exec"]) {
    test(`on ${path}`, async () => {
      const b = box(emu, boxes);
      await setFaults(emu, [`redirect=${listener.url}/collect?session=stolen@${path}`]);
      const result = await b.crabbox(["run", "--no-sync", "--", "true"]);
      expect(result.stderr).toContain(
        `error: aws-lambda-microvm refused cross-origin redirect to ${listener.url}/<redacted>`,
      );
      expect(result.stderr).not.toContain("session=stolen");
      expect(listener.requests).toEqual([]);
      await assertNoLeaks({
        scenario: `cross-origin redirect on ${path}`,
        emu,
        boxes: [b],
        exits: [{ label: "run", actual: result.code, expected: 1 }],
      });
    });
  }
});

describe("an exec stream that breaks the protocol is an error, never a success", () => {
  const streams: [string, () => Response, string][] = [
    [
      "an oversized NDJSON line",
      () =>
        ndjson([
          startedLine(),
          JSON.stringify({ seq: 2, type: "stdout", data: "A".repeat(2 * 1024 * 1024) }),
        ]),
      "NDJSON line longer than 1048576 bytes",
    ],
    [
      "a malformed NDJSON line",
      () => ndjson([startedLine(), "this is not json"]),
      "malformed NDJSON line: this is not json",
    ],
    [
      "a stream with no exit event",
      () => ndjson([startedLine(), JSON.stringify({ seq: 2, type: "stdout", data: btoa("partial\n") })]),
      "stream ended without an exit event",
    ],
  ];
  for (const [what, answer, message] of streams) {
    test(what, async () => {
      const b = box(emu, boxes);
      b.env.CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT = proxy.url;
      proxy.rules = [
        (req, url, { plane }) =>
          plane === "data" &&
          url.pathname.startsWith("/v1/exec") &&
          !url.pathname.endsWith("/signal") &&
          req.method !== "DELETE"
            ? answer()
            : undefined,
      ];
      const result = await b.crabbox(["run", "--no-sync", "--", "echo", "never-printed"]);
      expect(result.stderr).toContain(message);
      expect(result.stdout).not.toContain("never-printed");
      expect(result.stderr).toContain(`${"aws-lambda-microvm run summary"}`);
      await assertNoLeaks({
        scenario: `exec stream: ${what}`,
        emu,
        boxes: [b],
        exits: [{ label: "run", actual: result.code, expected: 1 }],
      });
    });
  }
});

describe("hostile .crabbox.yaml values are refused before anything is started", () => {
  const files: [string, string, string][] = [
    ["workdir /", "awsLambdaMicroVM:\n  workdir: /\n", 'workdir "/" is too broad'],
    [
      "workdir traversal",
      "awsLambdaMicroVM:\n  workdir: /workspace/../etc\n",
      "workdir must be a clean absolute path below /",
    ],
    [
      "credential keys",
      "aws:\n  region: us-east-1\n  secretAccessKey: wJalrXUtnFEMI-HOSTILE-VALUE\n",
      "credentials never belong in crabbox config",
    ],
    [
      "an endpoint",
      "awsLambdaMicroVM:\n  endpoint: http://127.0.0.1:9\n",
      "sets awsLambdaMicroVM.endpoint, which a repository's config may not set",
    ],
    ["env.allow", "env:\n  allow: ['*']\n", "sets env.allow, which a repository's config may not set"],
    [
      "a YAML alias bomb",
      [
        'a: &a ["x","x","x","x","x","x","x","x","x"]',
        ...["b", "c", "d", "e", "f", "g", "h", "i", "j", "k"].map(
          (name, i) => `${name}: &${name} [${Array(9).fill(`*${"abcdefghijk"[i]}`).join(",")}]`,
        ),
        "",
      ].join("\n"),
      "more than 10000 values once YAML aliases are expanded",
    ],
  ];
  for (const [what, yaml, message] of files) {
    test(what, async () => {
      const b = box(emu, boxes);
      b.write(".crabbox.yaml", yaml);
      const from = emu.records().length;
      const result = await b.crabbox(["run", "--", "true"]);
      expect(result.stderr).toContain(message);
      expect(result.stderr).not.toContain("HOSTILE-VALUE");
      expect(result.stderr).not.toContain("provisioning");
      expect(controlOps(from)).toEqual([]);
      expect(existsSync(join(b.stateDir, "claims"))).toBe(false);
      await assertNoLeaks({
        scenario: `.crabbox.yaml: ${what}`,
        emu,
        boxes: [b],
        exits: [{ label: "run", actual: result.code, expected: 2 }],
      });
    });
  }
});

describe("a repository config cannot make crabbox ship its own secrets", () => {
  test("re-including .crabbox/env through sync rules syncs nothing of it", async () => {
    const b = box(emu, boxes);
    b.write("proof.txt", "synced\n");
    b.write(".crabbox/env/deploy.env", "DEPLOY_TOKEN=never-leaves-this-machine\n");
    b.write(".crabbox/logs/run.log", "local log\n");
    // Control: an ordinary file there does travel, so the rules above are in force.
    b.write(".crabbox/notes.txt", "shared\n");
    b.write(
      ".crabbox.yaml",
      "sync:\n  exclude: ['!.crabbox', '!.crabbox/env', '!.crabbox/env/*', '!.crabbox/logs/*']\n",
    );
    const result = await b.crabbox([
      "run",
      "--",
      "sh",
      "-c",
      "cat proof.txt; find . -path './.crabbox/*' | sort; grep -r never-leaves . || echo clean",
    ]);
    expect(result.stdout).toBe("synced\n./.crabbox/notes.txt\nclean\n");
    await assertNoLeaks({
      scenario: ".crabbox.yaml re-including .crabbox/env (protected, never synced)",
      emu,
      boxes: [b],
      exits: [{ label: "run", actual: result.code, expected: 0 }],
    });
  });
});

describe("a hostile artifact download writes nothing outside the artifact dir", () => {
  test("traversal, absolute paths, escaping symlinks, writes through a symlink, devices", async () => {
    const b = box(emu, boxes);
    b.env.CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT = proxy.url;
    const sentinel = join(b.root, "sentinel");
    b.write("proof.txt", "synced\n");
    mkdirSync(sentinel);
    writeFileSync(join(sentinel, "keep.txt"), "precious\n");
    const artifacts = join(b.root, "artifacts");
    const tar = rawTar([
      { name: "out/ok.txt", type: "0", content: "fine\n" },
      { name: "out/../../escape.txt", type: "0", content: "escaped\n" },
      { name: `${b.root}/absolute.txt`, type: "0", content: "escaped\n" },
      { name: "out/up", type: "2", linkname: "../../.." },
      { name: "out/into", type: "2", linkname: sentinel },
      { name: "out/into/pwned.txt", type: "0", content: "escaped\n" },
      { name: "out/tty", type: "3" },
      { name: ".crabbox-files.json", type: "0", content: JSON.stringify({ stale: [], unmatched: [] }) },
    ]);
    proxy.rules = [
      (req, url, { plane }) =>
        plane === "data" && req.method === "GET" && url.pathname === "/v1/files"
          ? new Response(tar, { headers: { "content-type": "application/x-tar" } })
          : undefined,
    ];
    const result = await b.crabbox(["run", "--download", "out", "--artifact-dir", artifacts, "--", "true"]);
    expect(readFileSync(join(artifacts, "out/ok.txt"), "utf8")).toBe("fine\n");
    expect(readdirSync(sentinel)).toEqual(["keep.txt"]);
    expect(readFileSync(join(sentinel, "keep.txt"), "utf8")).toBe("precious\n");
    for (const path of [
      join(b.root, "escape.txt"),
      join(b.root, "absolute.txt"),
      join(b.repo, "escape.txt"),
    ]) {
      expect({ path, exists: existsSync(path) }).toEqual({ path, exists: false });
    }
    expect(result.stderr).toContain("refused");
    await assertNoLeaks({
      scenario: "hostile artifact tar (traversal, absolute, symlink escapes, device)",
      emu,
      boxes: [b],
      exits: [{ label: "run --download", actual: result.code, expected: 0 }],
    });
  });
});

describe("hostile lease names never reach the file system", () => {
  test("--id and stop with path traversal, --slug with separators", async () => {
    const b = box(emu, boxes);
    const from = emu.records().length;
    const run = await b.crabbox(["run", "--id", "../../../etc/passwd", "--", "true"]);
    const stop = await b.crabbox(["stop", "../claims/../../x"]);
    expect(run.stderr).toContain("lease not found");
    expect(stop.stderr).toContain("lease not found");
    expect(controlOps(from)).toEqual([]);
    const kept = await b.crabbox(["run", "--keep", "--slug", "../../Etc/Pass wd", "--no-sync", "--", "true"]);
    expect(kept.code).toBe(0);
    const claim = b.claims()[0] as { slug: string; leaseID: string };
    expect(claim.slug).toMatch(/^[a-z0-9-]+$/);
    const microvm = microvmIdOf(kept.stderr.split("\nleased ")[1] as string);
    await assertNoLeaks({
      scenario: "--id/stop traversal, --slug with separators",
      emu,
      boxes: [b],
      exits: [
        { label: "run --id", actual: run.code, expected: 4 },
        { label: "stop", actual: stop.code, expected: 4 },
      ],
      kept: [microvm],
    });
    expect((await b.crabbox(["stop", claim.slug])).code).toBe(0);
  });
});
