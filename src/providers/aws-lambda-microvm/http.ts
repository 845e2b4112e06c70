import type { Agent, ClientRequest, IncomingHttpHeaders, IncomingMessage } from "node:http";
import { CrabboxError } from "../../core/errors.ts";
import { type ErrorBody, type ErrorCode, RUNNER_PORT } from "../../protocol/types.ts";
import type { DataPlaneTarget } from "./endpoint.ts";

/**
 * The data-plane HTTP client: node:http/node:https rather than fetch, because Node's and Deno's fetch
 * silently drop a custom Host header, and in emulator mode the Host header is the only thing that
 * names the MicroVM. Every request carries the proxy token; redirects are followed only within the
 * MicroVM's own origin, so the token can never be sent anywhere else.
 *
 * Under Bun, whose fetch keeps the Host header, requests without a streamed body go through fetch
 * instead (fetchTransport): a warm `run --id` then never loads node:http, net and stream (~10 ms of
 * its ~120), and an exec stream is read with ~30% less CPU. Streamed uploads keep node:http (its
 * early-answer handling), and so does everything when a proxy variable is set, because Bun's fetch
 * would route through it where node:http never does.
 */

export const DEFAULT_HEADER_TIMEOUT_MS = 60_000;
const MAX_REDIRECTS = 10;
const ERROR_BODY_LIMIT = 64 * 1024;

export interface DataPlaneToken {
  value: string;
  /** True when the token came from a cache (so a 403 may mean it was revoked or expired early). */
  fromCache: boolean;
}

/** Mints or returns the MicroVM's proxy token; `forceRefresh` bypasses any cache. */
export type TokenProvider = (options: { forceRefresh: boolean }) => Promise<DataPlaneToken>;

/**
 * A request body. Bytes and strings can be re-sent (redirects, a 403 token refresh); a stream can
 * be sent once; a function returning a fresh stream is replayable.
 */
export type BodySource =
  | Uint8Array
  | string
  | ReadableStream<Uint8Array>
  | (() => ReadableStream<Uint8Array>);

export interface DataPlaneRequest {
  /** Names the operation in errors: `aws-lambda-microvm runner <op> failed: …`. */
  op: string;
  method: string;
  /** Path and query, starting with `/`. */
  path: string;
  headers?: Record<string, string>;
  body?: BodySource;
  /** Overrides the client's response-header timeout for this request; 0 disables it. */
  headerTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface DataPlaneResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** Streamed; no timeout applies while it is read. Cancel it to drop the connection. */
  body: ReadableStream<Uint8Array>;
}

export interface DataPlaneClientOptions {
  target: DataPlaneTarget;
  getToken: TokenProvider;
  /** Default 60 s; starts once the request body has been written completely. */
  headerTimeoutMs?: number;
}

export interface DataPlaneClient {
  readonly target: DataPlaneTarget;
  request(request: DataPlaneRequest): Promise<DataPlaneResponse>;
  /** Closes idle keep-alive connections. */
  close(): void;
}

/** A runner or proxy answer that was not what the operation expects. */
export class RunnerHttpError extends CrabboxError {
  readonly op: string;
  readonly status: number;
  /** The first 64 KiB of the body, trimmed. */
  readonly bodyText: string;
  /** The runner's protocol error when the body is an `ErrorBody` (absent for proxy errors). */
  readonly errorBody: ErrorBody | undefined;
  /** Shortcuts into errorBody, for callers that branch on them (409 base_mismatch). */
  readonly code: ErrorCode | undefined;
  readonly fingerprint: string | undefined;

  constructor(op: string, status: number, bodyText: string) {
    super(`aws-lambda-microvm runner ${op} failed: status=${status} body=${bodyText}`);
    this.op = op;
    this.status = status;
    this.bodyText = bodyText;
    this.errorBody = parseErrorBody(bodyText);
    this.code = this.errorBody?.code;
    this.fingerprint = this.errorBody?.fingerprint;
  }
}

function parseErrorBody(text: string): ErrorBody | undefined {
  let value: Partial<ErrorBody> | undefined;
  try {
    value = JSON.parse(text) as Partial<ErrorBody>;
  } catch {
    return undefined;
  }
  if (typeof value?.code !== "string" || typeof value.message !== "string") return undefined;
  const body: ErrorBody = { code: value.code, message: value.message };
  if (typeof value.fingerprint === "string") body.fingerprint = value.fingerprint;
  return body;
}

/**
 * An answer crabbox refuses on principle (a redirect to another origin): retrying cannot help and
 * must not happen, so readiness and exec reattachment give up on it at once.
 */
export class DataPlanePolicyError extends CrabboxError {}

function transportError(op: string, detail: string, cause?: unknown): CrabboxError {
  return new CrabboxError(`aws-lambda-microvm runner ${op} failed: ${detail}`, { cause });
}

/** Shows where a refused redirect pointed without leaking its path or query (which may hold secrets). */
export function redactUrl(url: URL): string {
  return `${url.protocol}//${url.host}/<redacted>`;
}

function isReplayable(body: BodySource | undefined): boolean {
  return (
    body === undefined || typeof body === "string" || body instanceof Uint8Array || typeof body === "function"
  );
}

function formatTimeout(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

function errorCode(error: unknown): string | undefined {
  return (error as { code?: string } | null)?.code;
}

function describeTransportError(error: unknown): string {
  const code = errorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  return code && !message.includes(code) ? `${code} ${message}` : message;
}

/** An IncomingMessage as a pull-driven web stream (backpressure reaches the socket). */
function responseStream(res: IncomingMessage): ReadableStream<Uint8Array> {
  const iterator = res[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const { value, done } = await iterator.next();
          if (done) controller.close();
          else controller.enqueue(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
        } catch (error) {
          controller.error(error);
        }
      },
      cancel() {
        res.destroy();
      },
    },
    { highWaterMark: 0 },
  );
}

/** Reads at most `limit` bytes of a body as text, then drops the rest. */
export async function readTextPrefix(
  body: ReadableStream<Uint8Array>,
  limit = ERROR_BODY_LIMIT,
): Promise<string> {
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  try {
    while (total < limit) {
      const { value, done } = await reader.read();
      if (done) break;
      parts.push(value.subarray(0, limit - total));
      total += Math.min(value.length, limit - total);
    }
  } catch {
    // A body cut short still says something useful.
  } finally {
    await reader.cancel().catch(() => {});
  }
  return Buffer.concat(parts).toString("utf8").trim();
}

async function discard(body: ReadableStream<Uint8Array>): Promise<void> {
  await body.cancel().catch(() => {});
}

interface Attempt {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Uint8Array | ReadableStream<Uint8Array> | undefined;
}

/** Proxy variables Bun's fetch honours (node:http ignores them all). */
const PROXY_ENV = ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"];

/** Bun's fetch, when it may carry data-plane requests (see the module comment); else undefined. */
function fetchTransport(env: Readonly<Record<string, string | undefined>>): typeof fetch | undefined {
  if (typeof (globalThis as { Bun?: unknown }).Bun === "undefined") return undefined;
  return PROXY_ENV.some((name) => env[name]) ? undefined : fetch;
}

export function createDataPlaneClient(options: DataPlaneClientOptions): DataPlaneClient {
  const { target } = options;
  const defaultTimeout = options.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS;
  const bunFetch = fetchTransport(process.env);
  const connectOrigin = `${target.protocol}//${target.hostname.includes(":") ? `[${target.hostname}]` : target.hostname}:${target.port}`;
  // One keep-alive agent per MicroVM (a TLS handshake per request would dominate small requests),
  // made when node:http is first needed.
  let node: { transport: typeof import("node:http"); agent: Agent } | undefined;
  const nodeTransport = async () => {
    if (!node) {
      const transport = (
        target.protocol === "https:" ? await import("node:https") : await import("node:http")
      ) as typeof import("node:http");
      node = { transport, agent: new transport.Agent({ keepAlive: true, maxSockets: 8 }) };
    }
    return node;
  };

  /** What every data-plane request carries, whichever transport sends it. */
  const proxyHeaders = (attempt: Attempt, token: string): Record<string, string> => ({
    ...attempt.headers,
    host: target.hostHeader,
    "x-aws-proxy-auth": token,
    "x-aws-proxy-port": String(RUNNER_PORT),
  });

  /** One request through Bun's fetch: same headers, the header timeout as an abort, no redirects. */
  async function sendFetch(
    op: string,
    attempt: Attempt & { body: Uint8Array | undefined },
    token: string,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    fetchFn: typeof fetch,
  ): Promise<DataPlaneResponse> {
    if (signal?.aborted) throw signal.reason ?? new Error("aborted");
    const deadline = new AbortController();
    let timedOut = false;
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            deadline.abort();
          }, timeoutMs)
        : undefined;
    let response: Response;
    try {
      response = await fetchFn(`${connectOrigin}${attempt.path}`, {
        method: attempt.method,
        headers: { ...proxyHeaders(attempt, token), "accept-encoding": "identity" },
        body: attempt.body,
        redirect: "manual",
        // A dependent signal, not a listener on the caller's: nothing to remove when the body ends.
        // Aborting after the headers drops the stream, as with node:http.
        signal: signal ? AbortSignal.any([signal, deadline.signal]) : deadline.signal,
        decompress: false,
      } as RequestInit);
    } catch (error) {
      if (timedOut) throw transportError(op, `no response headers within ${formatTimeout(timeoutMs)}`);
      if (signal?.aborted) throw signal.reason ?? error;
      throw transportError(op, describeTransportError(error), error);
    } finally {
      clearTimeout(timer);
    }
    const headers: IncomingHttpHeaders = {};
    response.headers.forEach((value, name) => {
      headers[name] = value;
    });
    const body = response.body ?? new ReadableStream<Uint8Array>({ start: (c) => c.close() });
    return { status: response.status, headers, body };
  }

  async function send(
    op: string,
    attempt: Attempt,
    token: string,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<DataPlaneResponse> {
    if (bunFetch && !(attempt.body instanceof ReadableStream)) {
      return sendFetch(op, { ...attempt, body: attempt.body }, token, timeoutMs, signal, bunFetch);
    }
    const { transport, agent } = await nodeTransport();
    return new Promise<DataPlaneResponse>((resolve, reject) => {
      let settled = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      let bodyReader: ReadableStreamDefaultReader<Uint8Array> | undefined;
      const headers = proxyHeaders(attempt, token);
      if (attempt.body instanceof Uint8Array) headers["content-length"] = String(attempt.body.length);
      else if (attempt.body === undefined && attempt.method !== "GET" && attempt.method !== "HEAD") {
        headers["content-length"] = "0";
      }
      let req: ClientRequest;
      const fail = (error: unknown) => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        void bodyReader?.cancel(error).catch(() => {});
        req?.destroy();
        reject(error);
      };
      const onAbort = () => fail(signal?.reason ?? new Error("aborted"));
      const startTimer = () => {
        if (settled || timeoutMs <= 0 || timer) return;
        timer = setTimeout(() => {
          fail(transportError(op, `no response headers within ${formatTimeout(timeoutMs)}`));
        }, timeoutMs);
      };
      try {
        req = transport.request({
          host: target.hostname,
          port: target.port,
          method: attempt.method,
          path: attempt.path,
          headers,
          agent,
          // TLS must name the MicroVM host (SNI and certificate check), not the connect address.
          ...(target.protocol === "https:" ? { servername: target.hostHeader } : {}),
        });
      } catch (error) {
        reject(transportError(op, describeTransportError(error), error));
        return;
      }
      if (signal) {
        if (signal.aborted) {
          onAbort();
          return;
        }
        signal.addEventListener("abort", onAbort, { once: true });
      }
      req.on("error", (error) => fail(transportError(op, describeTransportError(error), error)));
      req.on("finish", startTimer);
      // A black-holed connect would otherwise wait for the OS (minutes) before the body is ever sent.
      req.on("socket", (socket) => {
        if (!socket.connecting || timeoutMs <= 0) return;
        const connectTimer = setTimeout(() => {
          fail(transportError(op, `could not connect within ${formatTimeout(timeoutMs)}`));
        }, timeoutMs);
        const clear = () => clearTimeout(connectTimer);
        socket.once("connect", clear);
        socket.once("close", clear);
        req.once("close", clear);
      });
      req.on("response", (res) => {
        if (settled) {
          res.destroy();
          return;
        }
        settled = true;
        if (timer) clearTimeout(timer);
        // The runner may answer before reading the body (a 409 base mismatch): stop sending it.
        void bodyReader?.cancel().catch(() => {});
        req.on("error", () => {});
        res.on("close", () => signal?.removeEventListener("abort", onAbort));
        if (signal) {
          // Aborting after the headers drops the stream.
          signal.addEventListener("abort", () => res.destroy(), { once: true });
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: responseStream(res) });
      });
      const body = attempt.body;
      if (body === undefined || body instanceof Uint8Array) {
        req.end(body);
        return;
      }
      bodyReader = body.getReader();
      const reader = bodyReader;
      void (async () => {
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            if (settled) return;
            if (!req.write(value)) {
              await new Promise<void>((resolveDrain) => {
                const done = () => {
                  req.off("drain", done);
                  req.off("close", done);
                  resolveDrain();
                };
                req.on("drain", done);
                req.on("close", done);
              });
            }
          }
          if (!settled) req.end();
        } catch (error) {
          // The body's own error (e.g. a file that vanished from the archive) is the real story.
          fail(error);
        }
      })();
    });
  }

  async function request(init: DataPlaneRequest): Promise<DataPlaneResponse> {
    const timeoutMs = init.headerTimeoutMs ?? defaultTimeout;
    let method = init.method.toUpperCase();
    let path = init.path;
    let body: BodySource | undefined = init.body;
    let headers: Record<string, string> = { ...init.headers };
    let token = await options.getToken({ forceRefresh: false });
    let refreshed = false;
    let consumed = false;
    for (let redirects = 0; ; ) {
      if (consumed && !isReplayable(body)) {
        throw transportError(init.op, "cannot resend a streamed request body");
      }
      const payload =
        typeof body === "function"
          ? body()
          : typeof body === "string"
            ? new TextEncoder().encode(body)
            : body;
      consumed = true;
      const response = await send(
        init.op,
        { method, path, headers, body: payload },
        token.value,
        timeoutMs,
        init.signal,
      );

      if (response.status === 403 && token.fromCache && !refreshed && isReplayable(body)) {
        // The proxy rejected a cached token (revoked, or the clock disagreed): mint once and retry.
        await discard(response.body);
        refreshed = true;
        token = await options.getToken({ forceRefresh: true });
        continue;
      }

      const location = response.headers.location;
      if (response.status < 300 || response.status >= 400 || response.status === 304 || !location)
        return response;
      await discard(response.body);
      let next: URL;
      try {
        next = new URL(location, `${target.origin}${path}`);
      } catch {
        throw transportError(init.op, "invalid redirect location");
      }
      if (next.origin.toLowerCase() !== target.origin.toLowerCase()) {
        throw new DataPlanePolicyError(
          `aws-lambda-microvm refused cross-origin redirect to ${redactUrl(next)}`,
        );
      }
      if (++redirects > MAX_REDIRECTS)
        throw transportError(init.op, `stopped after ${MAX_REDIRECTS} redirects`);
      if (
        response.status === 303 ||
        ((response.status === 301 || response.status === 302) && method === "POST")
      ) {
        method = "GET";
        body = undefined;
        headers = Object.fromEntries(
          Object.entries(headers).filter(([name]) => !/^content-(type|encoding|length)$/i.test(name)),
        );
      }
      path = `${next.pathname}${next.search}`;
    }
  }

  return {
    target,
    request,
    close() {
      node?.agent.destroy();
    },
  };
}

/**
 * Checks a response's status; otherwise reads the first 64 KiB of its body and throws
 * `aws-lambda-microvm runner <op> failed: status=<code> body=<text>` (a RunnerHttpError).
 */
export async function expectStatus(
  op: string,
  response: DataPlaneResponse,
  ok: readonly number[] = [200],
): Promise<DataPlaneResponse> {
  if (ok.includes(response.status)) return response;
  throw new RunnerHttpError(op, response.status, await readTextPrefix(response.body));
}
