/**
 * The data-plane proxy (reference §3, §4.7): requests whose Host is
 * `<label>.lambda-microvm.<region>.on.aws` reach that VM's port 8080 (its runner's unix socket).
 * Order of checks as on AWS: a live token for this VM (403), the port in the token's scope (403
 * `Access to port denied`), the VM's state (held while PENDING, auto-resumed when SUSPENDED, 502 when
 * it cannot serve), then the app (502 when nothing listens). Every `X-aws-proxy-*` header is
 * stripped; bodies stream both ways without buffering and without idle cuts.
 */
import type { Server } from "bun";
import type { Emulator } from "./context.ts";
import type { RequestRecord } from "./log.ts";
import type { Microvm } from "./microvm.ts";
import { signalVm } from "./processes.ts";
import { allowsPort } from "./tokens.ts";

const HOST_PATTERN = /^([a-z0-9-]+)\.lambda-microvm\.([a-z0-9-]+)\.on\.aws$/;

/** How long a request to a PENDING VM is held before 502 (AWS holds the first request ~1-3 s). */
const PENDING_HOLD_MS = 3000;
/** How long a request waits for a SUSPENDING VM to settle. */
const SETTLE_MS = 30_000;

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

export function dataPlaneHost(host: string | null): { label: string; region: string } | undefined {
  if (!host) return undefined;
  const name = host.toLowerCase().replace(/:\d+$/, "").replace(/\.$/, "");
  const match = HOST_PATTERN.exec(name);
  return match ? { label: match[1] as string, region: match[2] as string } : undefined;
}

function plain(status: number, message: string): Response {
  return new Response(JSON.stringify({ message }), {
    status,
    headers: { "content-type": "application/json" },
  });
}

export async function handleDataPlane(
  emu: Emulator,
  req: Request,
  server: Server<unknown>,
  url: URL,
  target: { label: string; region: string },
): Promise<Response> {
  // Bun.serve resets requests quiet for idleTimeout (10 s default): a quiet exec must survive.
  server.timeout(req, 0);
  const started = Date.now();
  const path = url.pathname;
  const base: Omit<RequestRecord, "status" | "bytesOut" | "ms"> = {
    ts: new Date(started).toISOString(),
    plane: "data",
    method: req.method,
    path,
    bytesIn: 0,
  };
  const finish = (response: Response, vm?: Microvm, why?: string): Response => {
    emu.log.request({
      ...base,
      ...(vm ? { microvmId: vm.id } : {}),
      status: response.status,
      bytesOut: 0,
      ms: Date.now() - started,
      ...(why ? { error: why } : {}),
    });
    return response;
  };

  const vm = emu.registry.byLabel.get(target.label);
  if (!vm || vm.spec.region !== target.region)
    return finish(plain(403, "Forbidden"), undefined, "unknown endpoint");
  const token = req.headers.get("x-aws-proxy-auth");
  if (!token) return finish(plain(403, "Request missing authentication"), vm);
  const claims = await emu.tokens.open(token);
  if (!claims || claims.sub !== vm.id || claims.shell)
    return finish(plain(403, "Forbidden"), vm, "invalid token");
  if (claims.exp <= Date.now()) return finish(plain(403, "Forbidden"), vm, "expired token");
  const portHeader = req.headers.get("x-aws-proxy-port");
  let port = 8080;
  if (portHeader !== null) {
    port = /^\d{1,5}$/.test(portHeader.trim()) ? Number(portHeader.trim()) : Number.NaN;
    if (!(port >= 1 && port <= 65535)) return finish(plain(400, "Bad Request"), vm, "bad port header");
  }
  if (!allowsPort(claims.ports, port)) return finish(plain(403, "Access to port denied"), vm);
  if ((vm.spec.ingressNetworkConnectors ?? []).some((arn) => arn.endsWith(":NO_INGRESS"))) {
    return finish(plain(403, "Forbidden"), vm, "NO_INGRESS");
  }
  const redirect = emu.faults.take("redirect", path);
  if (redirect) {
    return finish(
      new Response(null, { status: 307, headers: { location: String(redirect.value) } }),
      vm,
      "fault",
    );
  }

  // Inbound traffic: arrival counts for idle accounting, as does completion (below).
  vm.touch();
  if (vm.state === "PENDING") await vm.waitFor((state) => state !== "PENDING", PENDING_HOLD_MS);
  if (vm.state === "SUSPENDING") await vm.waitFor((state) => state !== "SUSPENDING", SETTLE_MS);
  if (vm.state === "SUSPENDED") {
    if (!vm.spec.idlePolicy?.autoResumeEnabled) return finish(plain(502, "Bad Gateway"), vm, "suspended");
    // AWS holds the request while the VM resumes (including /resume), then delivers it.
    const resumed = await vm.requestResume()?.catch(() => false);
    if (!resumed) return finish(plain(502, "Bad Gateway"), vm, "auto-resume failed");
  }
  if (vm.state !== "RUNNING") return finish(plain(502, "Bad Gateway"), vm, `VM is ${vm.state}`);
  if (!vm.firstRequestSeen) {
    vm.firstRequestSeen = true;
    if (emu.faults.take("first-request-502", path)) return finish(plain(502, "Bad Gateway"), vm, "fault");
  }
  const socket = vm.socket;
  // Only the runner's port 8080 exists in an emulated VM: any other allowed port has nothing listening.
  if (port !== 8080 || !socket) return finish(plain(502, "Bad Gateway"), vm, `nothing listens on ${port}`);

  const headers = new Headers();
  for (const [name, value] of req.headers) {
    const lower = name.toLowerCase();
    if (lower.startsWith("x-aws-proxy-") || HOP_BY_HOP.has(lower)) continue;
    headers.append(name, value);
  }
  let bytesIn = 0;
  const hasBody = req.body !== null && req.method !== "GET" && req.method !== "HEAD";
  // The request body the runner receives stops after BYTES, as a connection dropped mid-upload would.
  const cutUpload = hasBody ? emu.faults.take("cut-upload-after", path) : undefined;
  const body = hasBody
    ? metered(req.body as ReadableStream<Uint8Array>, {
        cutAfter: cutUpload ? Number(cutUpload.value) : undefined,
        onChunk: (n) => {
          bytesIn += n;
        },
        onEnd: () => undefined,
      })
    : undefined;
  let upstream: Response;
  try {
    upstream = await fetch(`http://localhost${url.pathname}${url.search}`, {
      method: req.method,
      headers,
      body,
      redirect: "manual",
      decompress: false,
      unix: socket,
    });
  } catch (error) {
    vm.touch();
    return finish(plain(502, "Bad Gateway"), vm, `runner unreachable: ${String(error)}`);
  }
  if (emu.faults.take("runner-crash", path)) {
    emu.log.note(`[${vm.id}] fault: runner-crash on ${req.method} ${path}`);
    signalVm(vm.id, "SIGKILL");
  }
  const cut = emu.faults.take("cut-stream-after", path);
  const responseHeaders = new Headers();
  for (const [name, value] of upstream.headers) {
    if (!HOP_BY_HOP.has(name.toLowerCase())) responseHeaders.append(name, value);
  }
  const status = upstream.status;
  const out = metered(upstream.body, {
    cutAfter: cut ? Number(cut.value) : undefined,
    onChunk: () => undefined,
    onEnd: (bytesOut, why) => {
      vm.touch();
      emu.log.request({
        ...base,
        microvmId: vm.id,
        status,
        bytesIn,
        bytesOut,
        ms: Date.now() - started,
        ...(why ? { error: why } : {}),
      });
    },
  });
  return new Response(out, { status, headers: responseHeaders });
}

interface MeterOptions {
  cutAfter?: number;
  onChunk(bytes: number): void;
  onEnd(bytes: number, why?: string): void;
}

/**
 * Pass a stream through chunk by chunk (pull-driven, so nothing is buffered ahead of the reader),
 * counting bytes and reporting the end exactly once: finished, failed, cancelled by the reader, or
 * cut by the `cut-stream-after` fault.
 */
function metered(
  source: ReadableStream<Uint8Array> | null,
  options: MeterOptions,
): ReadableStream<Uint8Array> | null {
  if (!source) {
    options.onEnd(0);
    return null;
  }
  const reader = source.getReader();
  let bytes = 0;
  let ended = false;
  let cutPending = false;
  const end = (why?: string) => {
    if (ended) return;
    ended = true;
    options.onEnd(bytes, why);
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (cutPending) {
          void reader.cancel().catch(() => undefined);
          controller.error(new Error("stream cut by the cut-stream-after fault"));
          end("cut-stream-after");
          return;
        }
        try {
          const { done, value } = await reader.read();
          if (done) {
            controller.close();
            end();
            return;
          }
          let chunk = value;
          if (options.cutAfter !== undefined && bytes + chunk.length >= options.cutAfter) {
            chunk = chunk.subarray(0, options.cutAfter - bytes);
            cutPending = true;
          }
          bytes += chunk.length;
          options.onChunk(chunk.length);
          if (chunk.length > 0) controller.enqueue(chunk);
          else if (cutPending) {
            void reader.cancel().catch(() => undefined);
            controller.error(new Error("stream cut by the cut-stream-after fault"));
            end("cut-stream-after");
          }
        } catch (error) {
          controller.error(error);
          end(`stream failed: ${String(error)}`);
        }
      },
      cancel(reason) {
        void reader.cancel(reason).catch(() => undefined);
        end("client closed the stream");
      },
    },
    { highWaterMark: 0 },
  );
}
