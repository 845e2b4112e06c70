/**
 * The emulator: one Bun.serve listener for every plane. Requests whose Host is a MicroVM endpoint
 * (`<label>.lambda-microvm.<region>.on.aws`) go to the data-plane proxy; `/2025-09-09/…` and
 * `/2017-03-31/…` to the control plane; `/_emulator/…` to the test API (with --test-api); anything
 * else is S3, path-style (or virtual-hosted on `<bucket>.localhost`).
 */

import { rmSync } from "node:fs";
import type { Server } from "bun";
import { createClock } from "./clock.ts";
import type { Emulator, EmulatorOptions } from "./context.ts";
import { dataPlaneHost, handleDataPlane } from "./dataplane.ts";
import { FaultSet, FaultSpecError } from "./faults.ts";
import { seedImages } from "./image-api.ts";
import { createLog } from "./log.ts";
import { killVm, vmProcesses } from "./processes.ts";
import { handleControl } from "./router.ts";
import { handleS3 } from "./s3.ts";
import { claimState, prepareState, reapLeftovers, releaseState } from "./state.ts";
import { createTokenAuthority } from "./tokens.ts";

/** How long GetMicrovm keeps answering for a TERMINATED VM before it is forgotten (404). */
const TERMINATED_RETENTION_MS = 10 * 60_000;
/** Upper bound for terminating every VM on shutdown before the rest is killed outright. */
const SHUTDOWN_GRACE_MS = 20_000;

export interface RunningEmulator {
  url: string;
  port: number;
  emulator: Emulator;
  /** Terminate every VM (calling /terminate hooks), close the listener, release the state dir. */
  stop(): Promise<void>;
}

export async function startEmulator(options: EmulatorOptions): Promise<RunningEmulator> {
  claimState(options.stateDir);
  const paths = prepareState(options.stateDir);
  const log = createLog(options.logJson);
  const reaped = await reapLeftovers(paths);
  if (reaped > 0) log.note(`reaped ${reaped} leftover MicroVM process(es) of an earlier emulator`);
  const clock = createClock(options.timeScale);
  const faults = new FaultSet(options.faults);
  const emu: Emulator = {
    options,
    registry: { vms: new Map(), byLabel: new Map(), images: new Map(), idempotency: new Map() },
    builds: new Set(),
    clock,
    log,
    faults,
    tokens: createTokenAuthority(),
    paths,
    supervisor: { clock, log, faults, paths, isolation: options.isolation, testApi: options.testApi },
  };
  seedImages(emu);

  let server: Server<unknown>;
  try {
    server = Bun.serve({
      hostname: options.host,
      port: options.port,
      // Control and S3 requests are short; the data plane lifts the limit per request.
      idleTimeout: 120,
      maxRequestBodySize: 8 * 1024 * 1024 * 1024,
      fetch: (req, srv) => route(emu, req, srv),
      error: (error) => {
        log.note(`[emulator] request failed: ${String(error)}`);
        return new Response("internal error", { status: 500 });
      },
    });
  } catch (error) {
    releaseState(paths);
    const code = (error as { code?: string }).code;
    if (code === "EADDRINUSE") throw new Error(`${options.host}:${options.port} is in use (try --port 0)`);
    throw error;
  }

  const sweepMs = Math.min(250, Math.max(20, 250 * options.timeScale));
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [id, vm] of emu.registry.vms) {
      vm.tick(now);
      if (
        vm.state === "TERMINATED" &&
        vm.terminatedAt !== undefined &&
        now - vm.terminatedAt > TERMINATED_RETENTION_MS
      ) {
        emu.registry.vms.delete(id);
        emu.registry.byLabel.delete(vm.spec.endpoint.split(".")[0] as string);
        rmSync(vm.dir, { recursive: true, force: true });
      }
    }
  }, sweepMs);

  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  const port = server.port as number;
  let stopping: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    port,
    emulator: emu,
    stop() {
      stopping ??= (async () => {
        clearInterval(sweep);
        const all = [...emu.registry.vms.values()].map((vm) =>
          vm.requestTerminate("The emulator shut down."),
        );
        // Image builds smoke-booting a runner right now: their processes go too.
        all.push(...[...emu.builds].map((id) => killVm(id, 5000)));
        await Promise.race([Promise.allSettled(all), Bun.sleep(SHUTDOWN_GRACE_MS)]);
        await server.stop(true);
        releaseState(paths);
      })();
      return stopping;
    },
  };
}

async function route(emu: Emulator, req: Request, server: Server<unknown>): Promise<Response> {
  const url = new URL(req.url);
  const host = req.headers.get("host");
  const target = dataPlaneHost(host);
  if (target) return handleDataPlane(emu, req, server, url, target);
  const started = Date.now();
  const ts = new Date(started).toISOString();
  const path = url.pathname;
  if (path.startsWith("/2025-09-09/") || path === "/2025-09-09" || path.startsWith("/2017-03-31/")) {
    const result = await handleControl(emu, req, url);
    const bytesOut =
      Number(result.response.headers.get("content-length") ?? 0) || (await sizeOf(result.response));
    emu.log.request({
      ts,
      plane: "control",
      ...(result.op ? { op: result.op } : {}),
      method: req.method,
      path,
      ...(result.microvmId ? { microvmId: result.microvmId } : {}),
      status: result.response.status,
      bytesIn: result.bytesIn,
      bytesOut,
      ms: Date.now() - started,
    });
    return result.response;
  }
  if (path.startsWith("/_emulator/")) {
    const response = await testApi(emu, req, path);
    emu.log.request({
      ts,
      plane: "emulator",
      method: req.method,
      path,
      status: response.status,
      bytesIn: 0,
      bytesOut: 0,
      ms: Date.now() - started,
    });
    return response;
  }
  // Virtual-hosted S3 on `<bucket>.localhost`, which the S3 client picks for a localhost endpoint.
  const virtualBucket = /^([a-z0-9][a-z0-9.-]+)\.localhost(:\d+)?$/.exec(host ?? "")?.[1];
  const s3Url = virtualBucket ? new URL(`/${virtualBucket}${path === "/" ? "" : path}`, url) : url;
  const result = await handleS3(req, s3Url, emu.paths.s3);
  emu.log.request({
    ts,
    plane: "s3",
    op: result.op,
    method: req.method,
    path: s3Url.pathname,
    status: result.response.status,
    bytesIn: result.bytesIn,
    bytesOut: Number(result.response.headers.get("content-length") ?? 0),
    ms: Date.now() - started,
  });
  return result.response;
}

/** The byte size of a buffered (non-streamed) JSON response, without consuming it. */
async function sizeOf(response: Response): Promise<number> {
  const clone = response.clone();
  return (await clone.arrayBuffer()).byteLength;
}

/**
 * Test-only endpoints (--test-api): replace the fault set, and look inside a VM (its host
 * workspace directory and live processes) without going through the data plane, which would
 * count as traffic or wake a suspended VM.
 */
async function testApi(emu: Emulator, req: Request, path: string): Promise<Response> {
  const json = (status: number, body: unknown) =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
  if (!emu.options.testApi)
    return json(404, { message: "the test API is off (start the emulator with --test-api)" });
  if (path === "/_emulator/faults") {
    if (req.method === "GET") return json(200, { faults: emu.faults.list() });
    if (req.method !== "POST" && req.method !== "PUT") return json(405, { message: "use GET or POST" });
    let specs: unknown;
    try {
      const body = (await req.json()) as unknown;
      specs = Array.isArray(body) ? body : (body as { faults?: unknown }).faults;
    } catch {
      return json(400, { message: 'body must be JSON: {"faults": ["throttle@RunMicrovm,count=1", ...]}' });
    }
    if (!Array.isArray(specs) || !specs.every((spec) => typeof spec === "string")) {
      return json(400, { message: 'body must be JSON: {"faults": ["throttle@RunMicrovm,count=1", ...]}' });
    }
    try {
      emu.faults.replace(specs);
    } catch (error) {
      if (error instanceof FaultSpecError) return json(400, { message: error.message });
      throw error;
    }
    emu.log.note(`[emulator] faults now: ${specs.length ? specs.join(" ") : "(none)"}`);
    return json(200, { faults: emu.faults.list() });
  }
  const vmMatch = /^\/_emulator\/microvms\/([^/]+)$/.exec(path);
  if (vmMatch && req.method === "GET") {
    const vm = emu.registry.vms.get(decodeURIComponent(vmMatch[1] as string));
    if (!vm) return json(404, { message: "no such MicroVM" });
    return json(200, {
      microvmId: vm.id,
      state: vm.state,
      workspace: vm.workspace ?? null,
      socket: vm.socket ?? null,
      processes: vmProcesses(vm.id),
    });
  }
  return json(404, { message: `no test endpoint ${path}` });
}
