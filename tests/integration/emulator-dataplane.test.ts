/**
 * The emulator's data plane: Host routing to a VM's runner, token checks (missing, expired, other
 * VM, port scope), X-aws-proxy-* stripping (seen by the runner's test echo), streaming both ways
 * without idle cuts, 502s, and the data-plane faults.
 */

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  CreateMicrovmAuthTokenCommand,
  GetMicrovmCommand,
  RunMicrovmCommand,
  TerminateMicrovmCommand,
} from "@aws-sdk/client-lambda-microvms";
import { decodeExecEvents, fromBase64 } from "../../src/protocol/ndjson.ts";
import {
  dataFetch,
  execIn,
  mintToken,
  RUNNER_IMAGE,
  runMicrovm,
  startEmulator,
  type TestEmulator,
  type TestVm,
  waitForState,
} from "../support/emulator.ts";

// Real processes and scaled lifecycles: more than bun test's 5 s default when run directly.
setDefaultTimeout(30_000);

let emu: TestEmulator;
let vm: TestVm;
let other: TestVm;

beforeAll(async () => {
  // A quiet exec must really be quiet: no runner heartbeat inside the 12 s test.
  emu = await startEmulator({
    isolation: "none",
    testApi: true,
    env: { CRABBOX_RUNNER_HEARTBEAT_MS: "60000" },
  });
  [vm, other] = await Promise.all([runMicrovm(emu), runMicrovm(emu)]);
});
afterAll(async () => {
  expect(await emu.stop()).toBe(0);
  expect(emu.survivors()).toEqual([]);
});

async function setFaults(faults: string[]): Promise<void> {
  const response = await fetch(`${emu.url}/_emulator/faults`, {
    method: "POST",
    body: JSON.stringify({ faults }),
  });
  expect(response.status).toBe(200);
}

describe("routing and tokens", () => {
  test("a live token for the VM reaches its runner", async () => {
    const response = await dataFetch(emu, vm, "/health");
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ status: "ok", protocol: 1 });
  });

  test("missing, garbled, other-VM and out-of-scope tokens are refused with 403", async () => {
    const missing = await dataFetch(emu, { endpoint: vm.endpoint }, "/health");
    expect(missing.status).toBe(403);
    expect(await missing.text()).toContain("Request missing authentication");
    const garbled = await dataFetch(emu, { endpoint: vm.endpoint, token: "a.b.c.d.e" }, "/health");
    expect(garbled.status).toBe(403);
    const otherVm = await dataFetch(emu, { endpoint: vm.endpoint, token: other.token }, "/health");
    expect(otherVm.status).toBe(403);
    const port = await dataFetch(emu, vm, "/health", { headers: { "x-aws-proxy-port": "9000" } });
    expect(port.status).toBe(403);
    expect(await port.text()).toContain("Access to port denied");
    const badPort = await dataFetch(emu, vm, "/health", { headers: { "x-aws-proxy-port": "eighty" } });
    expect(badPort.status).toBe(400);
    const unknownHost = await dataFetch(
      emu,
      { endpoint: `${crypto.randomUUID()}.lambda-microvm.us-east-1.on.aws`, token: vm.token },
      "/health",
    );
    expect(unknownHost.status).toBe(403);
  });

  test("an expired token is refused", async () => {
    await setFaults(["token-ttl-s=1@CreateMicrovmAuthToken,count=1"]);
    const shortLived = await mintToken(emu, vm.microvmId);
    expect((await dataFetch(emu, { endpoint: vm.endpoint, token: shortLived }, "/health")).status).toBe(200);
    await Bun.sleep(1200);
    expect((await dataFetch(emu, { endpoint: vm.endpoint, token: shortLived }, "/health")).status).toBe(403);
  });

  test("an allowed port where nothing listens is a 502", async () => {
    const token = await mintToken(emu, vm.microvmId, [{ port: 9000 }]);
    const ranged = await emu.client().send(
      new CreateMicrovmAuthTokenCommand({
        microvmIdentifier: vm.microvmId,
        expirationInMinutes: 1,
        allowedPorts: [{ range: { startPort: 8000, endPort: 8100 } }],
      }),
    );
    const response = await dataFetch(emu, { endpoint: vm.endpoint, token }, "/health", {
      headers: { "x-aws-proxy-port": "9000" },
    });
    expect(response.status).toBe(502);
    const inRange = await dataFetch(
      emu,
      { endpoint: vm.endpoint, token: ranged.authToken?.["X-aws-proxy-auth"] },
      "/health",
      { headers: { "x-aws-proxy-port": "8080" } },
    );
    expect(inRange.status).toBe(200);
  });

  test("every X-aws-proxy-* header is stripped before the runner sees the request", async () => {
    const response = await dataFetch(emu, vm, "/_echo?x=1", {
      method: "POST",
      headers: {
        "x-aws-proxy-port": "8080",
        "X-AWS-Proxy-Force-H2": "true",
        "x-aws-proxy-anything": "1",
        "x-keep-me": "yes",
      },
      body: "ping",
    });
    expect(response.status).toBe(200);
    const echo = (await response.json()) as { method: string; path: string; headers: Record<string, string> };
    expect(echo.method).toBe("POST");
    expect(echo.path).toBe("/_echo?x=1");
    expect(Object.keys(echo.headers).filter((name) => name.toLowerCase().startsWith("x-aws-proxy"))).toEqual(
      [],
    );
    expect(echo.headers["x-keep-me"]).toBe("yes");
    // The real proxy keeps the MicroVM hostname as Host.
    expect(echo.headers.host).toBe(vm.endpoint);
  });
});

describe("streaming", () => {
  test("request and response bodies stream through and are counted in the log", async () => {
    // exec `wc -c` with stdin; once it started, feed it 3 MiB through POST /v1/exec/{id}/stdin.
    const size = 3 * 1024 * 1024;
    const execId = crypto.randomUUID();
    const response = await dataFetch(emu, vm, "/v1/exec", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ command: "wc -c", workdir: "/workspace/crabbox", stdin: true, execId }),
    });
    expect(response.status).toBe(200);
    const events = decodeExecEvents(response.body as ReadableStream<Uint8Array>)[Symbol.asyncIterator]();
    expect((await events.next()).value?.type).toBe("started");
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= size) return controller.close();
        const chunk = new Uint8Array(Math.min(256 * 1024, size - sent)).fill(97);
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const fed = await dataFetch(emu, vm, `/v1/exec/${execId}/stdin`, {
      method: "POST",
      body,
      duplex: "half",
    } as never);
    expect(fed.status).toBe(200);
    let stdout = "";
    let exitCode: number | null | undefined;
    for (let next = await events.next(); !next.done; next = await events.next()) {
      const event = next.value;
      if (event.type === "stdout") stdout += new TextDecoder().decode(fromBase64(event.data));
      if (event.type === "exit") exitCode = event.exitCode;
    }
    expect(stdout.trim()).toBe(String(size));
    expect(exitCode).toBe(0);
    await Bun.sleep(50);
    const records = emu
      .records()
      .filter((entry) => entry.plane === "data" && entry.microvmId === vm.microvmId);
    expect(records.findLast((entry) => entry.path === `/v1/exec/${execId}/stdin`)).toMatchObject({
      method: "POST",
      status: 200,
      bytesIn: size,
    });
    const exec = records.findLast((entry) => entry.path === "/v1/exec");
    expect(exec?.status).toBe(200);
    expect(exec?.bytesOut).toBeGreaterThan(0);
  });

  test(
    "a 12 s quiet exec streams through (longer than Bun's 10 s idle default)",
    async () => {
      const result = await execIn(emu, vm, "sleep 12; echo done");
      expect(result.status).toBe(200);
      expect(result.stdout).toBe("done\n");
      expect(result.exit?.exitCode).toBe(0);
    },
    { timeout: 30_000 },
  );
});

describe("state and faults", () => {
  test("a request to a PENDING VM is held until it runs", async () => {
    await setFaults(["slow-boot-ms=800,count=1"]);
    const run = await emu.client().send(new RunMicrovmCommand({ imageIdentifier: RUNNER_IMAGE() }));
    const token = await mintToken(emu, run.microvmId as string);
    const response = await dataFetch(emu, { endpoint: run.endpoint as string, token }, "/health");
    expect(response.status).toBe(200);
    await emu.client().send(new TerminateMicrovmCommand({ microvmIdentifier: run.microvmId }));
  });

  test("first-request-502, redirect and cut-stream-after", async () => {
    const fresh = await runMicrovm(emu);
    await setFaults([
      "first-request-502",
      "redirect=https://elsewhere.example/x@/redirect-me",
      "cut-stream-after=5@/v1/exec,count=1",
    ]);
    expect((await dataFetch(emu, fresh, "/health")).status).toBe(502);
    expect((await dataFetch(emu, fresh, "/health")).status).toBe(200);
    const redirected = await dataFetch(emu, fresh, "/redirect-me", { redirect: "manual" });
    expect(redirected.status).toBe(307);
    expect(redirected.headers.get("location")).toBe("https://elsewhere.example/x");
    let failed = false;
    try {
      const result = await execIn(emu, fresh, "echo 0123456789abcdef");
      failed = result.exit === undefined;
    } catch {
      failed = true;
    }
    expect(failed).toBe(true);
    await setFaults([]);
    await emu.client().send(new TerminateMicrovmCommand({ microvmIdentifier: fresh.microvmId }));
  });

  test("runner-crash kills the VM's processes mid-request: the VM terminates, then 502", async () => {
    const doomed = await runMicrovm(emu);
    await setFaults(["runner-crash@/v1/exec,count=1"]);
    let complete = true;
    try {
      const result = await execIn(emu, doomed, "sleep 5; echo never");
      complete = result.exit !== undefined;
    } catch {
      complete = false;
    }
    expect(complete).toBe(false);
    await waitForState(emu, doomed.microvmId, "TERMINATED");
    const view = await emu.client().send(new GetMicrovmCommand({ microvmIdentifier: doomed.microvmId }));
    expect(view.stateReason).toContain("SIGKILL");
    expect((await dataFetch(emu, doomed, "/health")).status).toBe(502);
  });

  test("a terminated VM answers 502", async () => {
    await emu.client().send(new TerminateMicrovmCommand({ microvmIdentifier: other.microvmId }));
    await waitForState(emu, other.microvmId, "TERMINATED");
    expect((await dataFetch(emu, other, "/health")).status).toBe(502);
  });
});
