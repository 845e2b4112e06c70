/**
 * `crabbox run` / `warmup` / `stop` end to end: the compiled binary against a real emulator (real
 * AWS SDK on the control plane, real runner processes behind the data plane), in throwaway homes
 * and git checkouts. What a user sees: remote output on stdout untouched, crabbox's lines on
 * stderr, the remote exit code, and no MicroVM left behind by a one-shot run.
 */
import { describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TerminateMicrovmCommand } from "@aws-sdk/client-lambda-microvms";
import { liveMicrovms, microvmIdOf, providerSuite, setFaults } from "./provider-run-harness.ts";

const { emu, box } = providerSuite({ binary: "dist", testApi: true });

async function expectNoLiveMicrovm(id: string): Promise<void> {
  expect((await liveMicrovms(emu())).map((vm) => vm.microvmId)).not.toContain(id);
}

describe("one-shot run", () => {
  test("streams stdout untouched, says everything else on stderr, exits with the remote code, leaves nothing", async () => {
    const b = box();
    b.write("proof.txt", "sync-proof\n");
    b.write("sub/dir/nested.txt", "nested\n");
    const result = await b.crabbox([
      "run",
      "--",
      "sh",
      "-c",
      'cat proof.txt; printf "\\377\\000x"; echo to-err >&2; exit 7',
    ]);
    expect(result.code).toBe(7);
    expect(Buffer.from(result.stdout, "latin1").length).toBeGreaterThan(0);
    expect(result.stdout.startsWith("sync-proof\n")).toBe(true);
    expect(result.stderr).toContain("sync candidate: 2 files, 18 B");
    expect(result.stderr).toContain(`emulator mode: control plane ${emu().url}`);
    expect(result.stderr).toMatch(
      /provisioning provider=aws-lambda-microvm lease=cbx_[a-f0-9]{12} slug=\S+ region=us-east-1 image=\S+ keep=false/,
    );
    expect(result.stderr).toMatch(
      /\nleased cbx_[a-f0-9]{12} slug=\S+ provider=aws-lambda-microvm microvm=\S+ region=us-east-1 image_version=1\.0\n/,
    );
    expect(result.stderr).toMatch(/sync complete in \d+(\.\d+)?m?s\n/);
    expect(result.stderr).toContain("to-err");
    expect(result.stderr).toMatch(/aws-lambda-microvm run summary sync=\S+ command=\S+ total=\S+ exit=7/);
    expect(result.stdout).not.toContain("provisioning");
    expect(b.claims()).toEqual([]);
    await expectNoLiveMicrovm(microvmIdOf(result.stderr.split("\nleased ")[1] as string));
  });

  test("binary output arrives byte for byte", async () => {
    const b = box();
    const child = b.start(["run", "--no-sync", "--", "printf", "\\377\\000\\376"]);
    const chunks: Buffer[] = [];
    child.child.stdout?.on("data", (chunk: Buffer) => chunks.push(chunk));
    const result = await child.exited;
    expect(result.code).toBe(0);
    expect([...Buffer.concat(chunks)]).toEqual([0xff, 0x00, 0xfe]);
  });

  test("from a subdirectory the remote cwd is the same subdirectory; --cwd overrides it", async () => {
    const b = box();
    b.write("pkg/api/file.txt", "x");
    b.write("docs/readme.md", "y");
    const sub = await b.crabbox(["run", "--", "pwd"], { cwd: join(b.repo, "pkg", "api") });
    expect(sub.code).toBe(0);
    expect(sub.stdout).toBe("/workspace/crabbox/pkg/api\n");
    const override = await b.crabbox(["run", "--cwd", "docs", "--", "ls"], { cwd: join(b.repo, "pkg") });
    expect(override.stdout).toBe("readme.md\n");
    const bad = await b.crabbox(["run", "--cwd", "../etc", "--", "ls"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).not.toContain("provisioning");
  });

  test("env forwarding: allow-listed names only, values never printed", async () => {
    const b = box();
    const result = await b.crabbox(
      [
        "run",
        "--no-sync",
        "--allow-env",
        "MY_API_TOKEN",
        "--",
        "sh",
        "-c",
        'echo "$MY_API_TOKEN/$NOT_ALLOWED/$CRABBOX_RUN_ID"',
      ],
      { env: { MY_API_TOKEN: "hunter2-secret", NOT_ALLOWED: "nope" } },
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^hunter2-secret\/\/run_[a-f0-9]{12}\n$/);
    expect(result.stderr).toContain("env forwarding provider=aws-lambda-microvm behavior=forwarded vars=");
    expect(result.stderr).toContain("MY_API_TOKEN=set len=14 secret=true");
    expect(result.stderr).toContain("CRABBOX_LEASE_ID=empty");
    expect(result.stderr).not.toContain("hunter2");
  });

  test("--sync-only prints `synced <workdir>` on stdout and runs nothing; --timing-json is one JSON line", async () => {
    const b = box();
    b.write("a.txt", "a");
    const result = await b.crabbox(["run", "--sync-only", "--timing-json"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("synced /workspace/crabbox\n");
    const line = result.stderr.split("\n").find((l) => l.startsWith("{"));
    const timing = JSON.parse(line as string);
    expect(Object.keys(timing).slice(0, 4)).toEqual(["provider", "leaseId", "slug", "syncMs"]);
    expect(timing).toMatchObject({
      provider: "aws-lambda-microvm",
      syncSkipped: false,
      exitCode: 0,
      runStatus: "succeeded",
      endToEndMs: 0,
    });
    expect(b.claims()).toEqual([]);
  });
});

describe("exit codes", () => {
  test("unknown lease → 4, missing image → 3, sync guard → 6, not a git repository → 6, no command → 2", async () => {
    const b = box();
    b.write("one.txt", "1");
    b.write("two.txt", "2");
    const unknown = await b.crabbox(["run", "--id", "no-such-lease", "--", "true"]);
    expect(unknown.code).toBe(4);
    expect(unknown.stderr).toContain("aws-lambda-microvm lease not found: no-such-lease");
    const noImage = await b.crabbox(["run", "--", "true"], { env: { CRABBOX_AWS_LAMBDA_MICROVM_IMAGE: "" } });
    expect(noImage.code).toBe(3);
    expect(noImage.stderr).toContain("AWS Lambda MicroVM image is required");
    const guard = await b.crabbox(["run", "--", "true"], { env: { CRABBOX_SYNC_FAIL_FILES: "2" } });
    expect(guard.code).toBe(6);
    expect(guard.stderr).toContain("sync candidate too large: 2 files >= limit 2");
    expect(guard.stderr).not.toContain("provisioning");
    const outside = mkdtempSync(join(tmpdir(), "crabbox-not-git-"));
    try {
      const notGit = await b.crabbox(["run", "--", "true"], { cwd: outside });
      expect(notGit.code).toBe(6);
      expect(notGit.stderr).toContain("not a git repository");
      expect(notGit.stderr).not.toContain("provisioning");
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
    const blank = await b.crabbox(["run", "--no-sync", "--shell", "--", "  "]);
    expect(blank.code).toBe(2);
    expect(blank.stderr).not.toContain("provisioning");
    expect(b.claims()).toEqual([]);
  });
});

describe("retained leases", () => {
  test("--keep --slug, run --id --shell reuses it, a locally deleted file is gone remotely, stop releases it", async () => {
    const b = box();
    b.write("keep.txt", "keep");
    b.write("gone.txt", "gone");
    const kept = await b.crabbox(["run", "--keep", "--slug", "Lambda Test", "--", "ls"]);
    expect(kept.code).toBe(0);
    expect(kept.stdout).toBe("gone.txt\nkeep.txt\n");
    expect(kept.stderr).toContain("slug=lambda-test");
    expect(kept.stderr).toContain("keep=true");
    const microvm = microvmIdOf(kept.stderr.split("\nleased ")[1] as string);
    const [claim] = b.claims();
    expect(claim).toMatchObject({
      slug: "lambda-test",
      cloudID: microvm,
      state: "ready",
      providerScope: "us-east-1",
    });
    expect((claim as { labels: Record<string, string> }).labels.keep).toBe("true");
    expect((claim as { runner: { protocol: number } }).runner.protocol).toBe(1);

    rmSync(join(b.repo, "gone.txt"));
    b.write("new.txt", "new");
    const reuse = await b.crabbox([
      "run",
      "--id",
      "lambda-test",
      "--shell",
      "ls && echo lease=$CRABBOX_LEASE_ID",
    ]);
    expect(reuse.code).toBe(0);
    expect(reuse.stdout).toBe("keep.txt\nnew.txt\nlease=lambda-test\n");
    expect(reuse.stderr).not.toContain("provisioning");
    expect(reuse.stderr).toContain(`microvm=${microvm}`);

    const slugWithId = await b.crabbox(["run", "--id", "lambda-test", "--slug", "x", "--", "true"]);
    expect(slugWithId.code).toBe(2);

    // The data-plane token is cached per MicroVM (0600) between commands, and dropped on stop.
    const tokenFile = join(b.stateDir, "tokens", `${microvm}.json`);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);

    const stop = await b.crabbox(["stop", "lambda-test"]);
    expect(stop.code).toBe(0);
    expect(stop.stderr).toContain(
      `released lease=${(claim as { leaseID: string }).leaseID} microvm=${microvm}`,
    );
    expect(b.claims()).toEqual([]);
    expect(existsSync(tokenFile)).toBe(false);
    await expectNoLiveMicrovm(microvm);
    const again = await b.crabbox(["stop", "lambda-test"]);
    expect(again.code).toBe(4);
  });

  test("warmup keeps the lease; run --id waits for a lease in use and says so once", async () => {
    const b = box();
    const warm = await b.crabbox(["warmup", "--slug", "warm", "--keep=false"]);
    expect(warm.code).toBe(0);
    expect(warm.stdout).toMatch(
      /^leased cbx_[a-f0-9]{12} slug=warm provider=aws-lambda-microvm microvm=\S+ region=us-east-1 image_version=1\.0\nwarmup complete total=\S+\n$/,
    );
    expect(warm.stderr).toContain("warning: aws-lambda-microvm warmup keeps the MicroVM until explicit stop");
    const leaseId = /leased (cbx_\S+)/.exec(warm.stdout)?.[1] as string;

    const first = b.start([
      "run",
      "--id",
      "warm",
      "--no-sync",
      "--",
      "sh",
      "-c",
      "echo first-started; sleep 2; echo first-done",
    ]);
    await first.waitFor("first-started");
    const waiting = b.start(["run", "--id", "warm", "--", "cat", "late.txt"]);
    await waiting.waitFor("waiting for lease");
    // Written while the second run waits: it syncs the tree as it is when it gets its turn.
    b.write("late.txt", "second\n");
    const firstResult = await first.exited;
    const second = await waiting.exited;
    expect(firstResult.code).toBe(0);
    expect(firstResult.stdout).toBe("first-started\nfirst-done\n");
    expect(second.code).toBe(0);
    expect(second.stdout).toBe("second\n");
    const waits = second.stderr.split("\n").filter((line) => line.startsWith("waiting for lease"));
    expect(waits).toEqual([`waiting for lease ${leaseId} (held by pid ${first.child.pid})`]);

    expect((await b.crabbox(["stop", "warm"])).code).toBe(0);
  });

  test("--keep-on-failure keeps the MicroVM only when the command fails", async () => {
    const b = box();
    const ok = await b.crabbox(["run", "--keep-on-failure", "--no-sync", "--", "true"]);
    expect(ok.code).toBe(0);
    expect(b.claims()).toEqual([]);
    await expectNoLiveMicrovm(microvmIdOf(ok.stderr.split("\nleased ")[1] as string));

    const failed = await b.crabbox([
      "run",
      "--keep-on-failure",
      "--no-sync",
      "--slug",
      "kof",
      "--",
      "sh",
      "-c",
      "exit 3",
    ]);
    expect(failed.code).toBe(3);
    expect(failed.stderr).toMatch(
      /keep-on-failure: kept lease=cbx_[a-f0-9]{12} slug=kof expires=idle\/ttl idle_timeout=30m0s ttl=1h30m0s/,
    );
    expect(failed.stderr).toContain(
      "rerun: crabbox run --provider aws-lambda-microvm --id kof -- sh -c 'exit 3'",
    );
    expect(failed.stderr).toContain("stop: crabbox stop --provider aws-lambda-microvm kof");
    const [claim] = b.claims() as { labels: Record<string, string>; cloudID: string }[];
    expect(claim?.labels.keep).toBe("true");
    expect((await liveMicrovms(emu())).map((vm) => vm.microvmId)).toContain(claim?.cloudID as string);
    expect((await b.crabbox(["stop", "kof"])).code).toBe(0);
  });

  test("a rotated image blocks reuse (exit 4) but stop still works", async () => {
    const b = box();
    const warm = await b.crabbox(["warmup", "--slug", "rotated"]);
    expect(warm.code).toBe(0);
    const other = "arn:aws:lambda:us-east-1:000000000000:microvm-image:other-image";
    const reuse = await b.crabbox(["run", "--id", "rotated", "--no-sync", "--", "true"], {
      env: { CRABBOX_AWS_LAMBDA_MICROVM_IMAGE: other },
    });
    expect(reuse.code).toBe(4);
    expect(reuse.stderr).toContain("image identity mismatch");
    const stop = await b.crabbox(["stop", "rotated"], { env: { CRABBOX_AWS_LAMBDA_MICROVM_IMAGE: other } });
    expect(stop.code).toBe(0);
  });
});

describe("readiness and the data plane", () => {
  test("a MicroVM that ends while crabbox waits for it → exit 5 with AWS's reason, no claim left", async () => {
    const b = box();
    await setFaults(emu(), ["slow-boot-ms=20000@RunMicrovm,count=1"]);
    const run = b.start(["run", "--no-sync", "--", "true"]);
    let microvm: string | undefined;
    for (let i = 0; i < 200 && !microvm; i++) {
      microvm = b.claims()[0]?.cloudID as string | undefined;
      if (!microvm) await Bun.sleep(20);
    }
    expect(microvm).toBeTruthy();
    await emu()
      .client()
      .send(new TerminateMicrovmCommand({ microvmIdentifier: microvm }));
    const result = await run.exited;
    expect(result.code).toBe(5);
    expect(result.stderr).toContain(`AWS Lambda MicroVM ${microvm} entered TERMINAT`);
    expect(result.stderr).toContain("TerminateMicrovm request");
    expect(b.claims()).toEqual([]);
    expect(await liveMicrovms(emu())).toEqual([]);
  });

  test("502s from the proxy while the MicroVM warms up are retried", async () => {
    const b = box();
    await setFaults(emu(), ["first-request-502"]);
    const result = await b.crabbox(["run", "--no-sync", "--", "echo", "warmed"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("warmed\n");
    const vm = microvmIdOf(result.stderr.split("\nleased ")[1] as string);
    const health = emu()
      .records()
      .filter((r) => r.microvmId === vm && r.path === "/health");
    expect(health[0]?.status).toBe(502);
    expect(health.at(-1)?.status).toBe(200);
  });

  test("a stream cut mid-command reattaches: no gap, no duplicate, the command runs once", async () => {
    const b = box();
    await setFaults(emu(), ["cut-stream-after=300@/v1/exec,count=1"]);
    const result = await b.crabbox([
      "run",
      "--no-sync",
      "--",
      "sh",
      "-c",
      'for i in $(seq 1 200); do echo "line $i"; done; echo ran >> .ran-marker; wc -l < .ran-marker',
    ]);
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split("\n");
    expect(lines.slice(0, 200)).toEqual(Array.from({ length: 200 }, (_, i) => `line ${i + 1}`));
    expect(lines[200]?.trim()).toBe("1");
    const exec = emu()
      .records()
      .filter((r) => r.plane === "data" && r.path.startsWith("/v1/exec"));
    expect(exec.some((r) => r.error !== undefined)).toBe(true);
    expect(exec.some((r) => /^\/v1\/exec\/run_[a-f0-9]{12}\/events/.test(r.path))).toBe(true);
  });

  test("a control plane that cannot be reached: exit 1 with a hint, no claim left", async () => {
    const b = box();
    const result = await b.crabbox(["run", "--no-sync", "--", "true"], {
      env: { CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT: "http://127.0.0.1:9" },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("ECONNREFUSED");
    expect(result.stderr).toContain("hint: is the emulator running?");
    expect(b.claims()).toEqual([]);
  });

  test("AWS rejecting RunMicrovm leaves no claim", async () => {
    const b = box();
    const result = await b.crabbox(["run", "--no-sync", "--", "true"], {
      env: {
        CRABBOX_AWS_LAMBDA_MICROVM_IMAGE: "arn:aws:lambda:us-east-1:000000000000:microvm-image:missing-image",
      },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("RunMicrovm");
    expect(b.claims()).toEqual([]);
  });
});

describe("leases and their claims", () => {
  test("a lease is claimed by its repository; another checkout needs --reclaim", async () => {
    const b = box();
    expect((await b.crabbox(["warmup", "--slug", "owned"])).code).toBe(0);
    const other = join(b.root, "other");
    mkdirSync(other);
    execFileSync("git", ["init", "-q"], { cwd: other, env: b.env });
    const refused = await b.crabbox(["run", "--id", "owned", "--no-sync", "--", "true"], { cwd: other });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`is claimed by repo ${b.repo}; use --reclaim to claim it for ${other}`);
    const reclaimed = await b.crabbox(
      ["run", "--id", "owned", "--reclaim", "--no-sync", "--", "echo", "mine"],
      {
        cwd: other,
      },
    );
    expect(reclaimed.code).toBe(0);
    expect(reclaimed.stdout).toBe("mine\n");
    expect(b.claims()[0]?.repoRoot).toBe(other);
    expect((await b.crabbox(["stop", "owned"])).code).toBe(0);
  });

  test("stop of a lease whose MicroVM AWS no longer knows: refused with a hint, forgotten with forget-missing", async () => {
    const b = box();
    const leaseID = "cbx_00000000dead";
    const claim = {
      leaseID,
      revision: "0".repeat(32),
      slug: "ghost",
      provider: "aws-lambda-microvm",
      cloudID: "microvm-00000000-0000-0000-0000-000000000000",
      providerScope: "us-east-1",
      repoRoot: b.repo,
      claimedAt: "2026-06-01T12:00:00Z",
      lastUsedAt: "2026-06-01T12:00:00Z",
    };
    mkdirSync(join(b.stateDir, "claims"), { recursive: true });
    writeFileSync(join(b.stateDir, "claims", `${leaseID}.json`), JSON.stringify(claim));
    const refused = await b.crabbox(["stop", "ghost"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("ResourceNotFoundException");
    expect(refused.stderr).toContain("--aws-lambda-microvm-forget-missing");
    expect(b.claims()).toHaveLength(1);
    const forgotten = await b.crabbox(["stop", "ghost", "--aws-lambda-microvm-forget-missing"]);
    expect(forgotten.code).toBe(0);
    expect(forgotten.stderr).toContain(`released lease=${leaseID}`);
    expect(b.claims()).toEqual([]);
  });

  test("when TerminateMicrovm fails, a recovery claim and the exact stop command remain", async () => {
    const b = box();
    await setFaults(emu(), ["internal@TerminateMicrovm"]);
    const run = await b.crabbox(["run", "--no-sync", "--", "echo", "done"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("done\n");
    const leaseId = /lease=(cbx_[a-f0-9]{12})/.exec(run.stderr)?.[1] as string;
    const microvm = microvmIdOf(run.stderr.split("\nleased ")[1] as string);
    expect(run.stderr).toContain(
      `warning: termination failed for AWS Lambda MicroVM ${microvm}; recovery claim ${leaseId} remains for cleanup:`,
    );
    expect(run.stderr).toContain(`retry with crabbox stop --provider aws-lambda-microvm '${leaseId}'`);
    const [claim] = b.claims() as { state: string; labels: Record<string, string> }[];
    expect(claim?.state).toBe("recovery");
    expect(claim?.labels.keep).toBe("false");

    // A rollback (here: AWS handed out an endpoint outside the allow-list) takes the same way out.
    await setFaults(emu(), ["internal@TerminateMicrovm", "endpoint=evil.example.com@RunMicrovm,count=1"]);
    const refused = await b.crabbox(["run", "--no-sync", "--", "true"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("error: invalid AWS Lambda MicroVM endpoint for region us-east-1");
    expect(refused.stderr).toContain("warning: rollback termination failed for AWS Lambda MicroVM");
    expect(b.claims()).toHaveLength(2);

    await setFaults(emu(), []);
    expect((await b.crabbox(["stop", leaseId])).code).toBe(0);
    await expectNoLiveMicrovm(microvm);
    const rest = b.claims()[0] as { leaseID: string };
    expect((await b.crabbox(["stop", rest.leaseID])).code).toBe(0);
    expect(b.claims()).toEqual([]);
  });

  test("--force-sync-large lets a sync over the limits through", async () => {
    const b = box();
    b.write("one.txt", "1");
    b.write("two.txt", "2");
    const result = await b.crabbox(["run", "--force-sync-large", "--", "cat", "one.txt", "two.txt"], {
      env: { CRABBOX_SYNC_FAIL_FILES: "2" },
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("12");
  });
});
