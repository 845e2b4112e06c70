import { afterEach, describe, expect, test } from "bun:test";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { CrabboxError } from "../../../src/core/errors.ts";
import { encodeEvent } from "../../../src/protocol/ndjson.ts";
import type { ExecEvent } from "../../../src/protocol/types.ts";
import {
  dataPlaneTarget,
  parseControlPlaneEndpoint,
} from "../../../src/providers/aws-lambda-microvm/endpoint.ts";
import {
  createDataPlaneClient,
  type DataPlaneToken,
  expectStatus,
  RunnerHttpError,
  type TokenProvider,
} from "../../../src/providers/aws-lambda-microvm/http.ts";
import {
  createRunnerClient,
  RunnerStreamError,
} from "../../../src/providers/aws-lambda-microvm/runner-client.ts";

const HOST = "vm1.lambda-microvm.eu-west-1.on.aws";
type Handler = (req: IncomingMessage, res: ServerResponse, body: () => Promise<Buffer>) => unknown;

interface TestServer {
  port: number;
  requests: { method: string; url: string; headers: IncomingMessage["headers"] }[];
}

const servers: Server[] = [];
const closers: (() => void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) close();
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
});

async function serve(handler: Handler): Promise<TestServer> {
  const state: TestServer = { port: 0, requests: [] };
  const server = createServer((req, res) => {
    state.requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    const body = async () => {
      const parts: Buffer[] = [];
      for await (const chunk of req) parts.push(chunk as Buffer);
      return Buffer.concat(parts);
    };
    void handler(req, res, body);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.port = (server.address() as AddressInfo).port;
  return state;
}

function staticToken(value = "tok-1"): TokenProvider {
  return async () => ({ value, fromCache: false });
}

function clientFor(port: number, getToken: TokenProvider = staticToken(), headerTimeoutMs?: number) {
  const target = dataPlaneTarget(
    HOST,
    "eu-west-1",
    parseControlPlaneEndpoint(`http://127.0.0.1:${port}`, "flag"),
  );
  const client = createDataPlaneClient({ target, getToken, headerTimeoutMs });
  closers.push(() => client.close());
  return client;
}

function runnerFor(port: number, getToken: TokenProvider = staticToken()) {
  const target = dataPlaneTarget(
    HOST,
    "eu-west-1",
    parseControlPlaneEndpoint(`http://127.0.0.1:${port}`, "flag"),
  );
  const runner = createRunnerClient({ target, getToken });
  closers.push(() => runner.close());
  return runner;
}

async function text(body: ReadableStream<Uint8Array>): Promise<string> {
  return new Response(body).text();
}

function slowStream(chunks: number, delayMs: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    async pull(controller) {
      if (sent === chunks) {
        controller.close();
        return;
      }
      await Bun.sleep(delayMs);
      sent++;
      controller.enqueue(new TextEncoder().encode(`chunk${sent};`));
    },
  });
}

async function failure(promise: Promise<unknown>): Promise<CrabboxError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CrabboxError);
  return error as CrabboxError;
}

describe("data-plane requests", () => {
  test("go to the loopback origin with the MicroVM host as Host and the proxy headers", async () => {
    const server = await serve((_req, res) => res.end("ok"));
    const client = clientFor(server.port, staticToken("secret-token"));
    const response = await client.request({ op: "health", method: "GET", path: "/health?x=1" });
    expect(response.status).toBe(200);
    expect(await text(response.body)).toBe("ok");
    expect(server.requests[0]?.url).toBe("/health?x=1");
    expect(server.requests[0]?.headers).toMatchObject({
      host: HOST,
      "x-aws-proxy-auth": "secret-token",
      "x-aws-proxy-port": "8080",
    });
  });

  test("stream request and response bodies", async () => {
    const server = await serve(async (_req, res, body) => {
      const received = (await body()).toString();
      res.writeHead(200);
      res.write("got:");
      res.end(received);
    });
    const client = clientFor(server.port);
    const response = await client.request({
      op: "sync",
      method: "POST",
      path: "/v1/sync",
      body: slowStream(3, 1),
    });
    expect(await text(response.body)).toBe("got:chunk1;chunk2;chunk3;");
    expect(server.requests[0]?.headers["transfer-encoding"]).toBe("chunked");
  });
});

describe("redirects", () => {
  test("a cross-origin redirect is refused and the token never reaches the other origin", async () => {
    const other = await serve((_req, res) => res.end("stolen"));
    for (const location of [
      `http://127.0.0.1:${other.port}/steal?token=1`,
      `https://evil.example/x`,
      `http://${HOST}/downgrade`,
      `https://${HOST}:8443/other-port`,
    ]) {
      const server = await serve((_req, res) => {
        res.writeHead(302, { location });
        res.end();
      });
      const error = await failure(clientFor(server.port).request({ op: "exec", method: "GET", path: "/x" }));
      expect(error.message).toStartWith("aws-lambda-microvm refused cross-origin redirect to ");
      expect(error.message).not.toContain("steal");
      expect(error.message).not.toContain("token=1");
    }
    expect(other.requests).toHaveLength(0);
  });

  test("same-origin redirects are followed with the token (relative and absolute)", async () => {
    const server = await serve((req, res) => {
      if (req.url === "/a") res.writeHead(307, { location: "/b" }).end();
      else if (req.url === "/b") res.writeHead(308, { location: `https://${HOST}/c?q=1` }).end();
      else res.end(`at ${req.url}`);
    });
    const response = await clientFor(server.port).request({
      op: "x",
      method: "POST",
      path: "/a",
      body: "payload",
    });
    expect(await text(response.body)).toBe("at /c?q=1");
    expect(
      server.requests.map((r) => [r.method, r.url, r.headers["x-aws-proxy-auth"], r.headers.host]),
    ).toEqual([
      ["POST", "/a", "tok-1", HOST],
      ["POST", "/b", "tok-1", HOST],
      ["POST", "/c?q=1", "tok-1", HOST],
    ]);
  });

  test("303 turns into a GET without body; a streamed body cannot be re-sent on 307", async () => {
    const server = await serve((req, res) => {
      if (req.url === "/post") res.writeHead(303, { location: "/done" }).end();
      else if (req.url === "/stream") res.writeHead(307, { location: "/done" }).end();
      else res.end(req.method);
    });
    const client = clientFor(server.port);
    const response = await client.request({ op: "x", method: "POST", path: "/post", body: "b" });
    expect(await text(response.body)).toBe("GET");
    const error = await failure(
      client.request({ op: "x", method: "POST", path: "/stream", body: slowStream(1, 1) }),
    );
    expect(error.message).toBe("aws-lambda-microvm runner x failed: cannot resend a streamed request body");
  });

  test("at most 10 redirects", async () => {
    const server = await serve((_req, res) => res.writeHead(302, { location: "/again" }).end());
    const error = await failure(clientFor(server.port).request({ op: "health", method: "GET", path: "/" }));
    expect(error.message).toBe("aws-lambda-microvm runner health failed: stopped after 10 redirects");
    expect(server.requests).toHaveLength(11);
  });
});

describe("timeouts", () => {
  test("withheld response headers fail after the header timeout", async () => {
    const server = await serve(async (_req, _res, body) => {
      await body();
      // never answers
    });
    const error = await failure(
      clientFor(server.port, staticToken(), 200).request({
        op: "exec",
        method: "POST",
        path: "/",
        body: "x",
      }),
    );
    expect(error.message).toBe("aws-lambda-microvm runner exec failed: no response headers within 200ms");
  });

  test("the header timer starts after the body: an upload longer than the bound succeeds", async () => {
    const server = await serve(async (_req, res, body) => res.end(String((await body()).length)));
    const client = clientFor(server.port, staticToken(), 150);
    const response = await client.request({ op: "sync", method: "POST", path: "/", body: slowStream(6, 60) });
    expect(await text(response.body)).toBe(String("chunk1;".length * 6));
  });

  test("no timeout applies to a response stream", async () => {
    const server = await serve(async (_req, res) => {
      res.writeHead(200);
      for (let i = 0; i < 5; i++) {
        res.write(`${i}`);
        await Bun.sleep(60);
      }
      res.end();
    });
    const response = await clientFor(server.port, staticToken(), 100).request({
      op: "exec",
      method: "GET",
      path: "/",
    });
    expect(await text(response.body)).toBe("01234");
  });

  test("a per-request override (the readiness probe's 10 s) wins", async () => {
    const server = await serve(() => {});
    const error = await failure(
      clientFor(server.port).request({ op: "health", method: "GET", path: "/health", headerTimeoutMs: 100 }),
    );
    expect(error.message).toContain("no response headers within 100ms");
  });
});

describe("tokens", () => {
  function rotating(calls: { forceRefresh: boolean }[]): TokenProvider {
    return async (options) => {
      calls.push(options);
      const token: DataPlaneToken = options.forceRefresh
        ? { value: "new", fromCache: false }
        : { value: "old", fromCache: true };
      return token;
    };
  }

  test("a proxy 403 with a cached token → mint once and retry", async () => {
    const server = await serve((req, res) => {
      if (req.headers["x-aws-proxy-auth"] === "old") res.writeHead(403).end("Forbidden");
      else res.end("ok");
    });
    const calls: { forceRefresh: boolean }[] = [];
    const response = await clientFor(server.port, rotating(calls)).request({
      op: "exec",
      method: "POST",
      path: "/",
      body: "replayable",
    });
    expect(await text(response.body)).toBe("ok");
    expect(calls).toEqual([{ forceRefresh: false }, { forceRefresh: true }]);
    expect(server.requests.map((r) => r.headers["x-aws-proxy-auth"])).toEqual(["old", "new"]);
  });

  test("only once, only for cached tokens, only with a replayable body", async () => {
    const server = await serve((_req, res) => res.writeHead(403).end("Access to port denied"));
    const calls: { forceRefresh: boolean }[] = [];
    const twice = await clientFor(server.port, rotating(calls)).request({
      op: "x",
      method: "GET",
      path: "/",
    });
    expect(twice.status).toBe(403);
    expect(calls).toHaveLength(2);
    const fresh = await clientFor(server.port, staticToken()).request({ op: "x", method: "GET", path: "/" });
    expect(fresh.status).toBe(403);
    const streamCalls: { forceRefresh: boolean }[] = [];
    const streamed = await clientFor(server.port, rotating(streamCalls)).request({
      op: "x",
      method: "POST",
      path: "/",
      body: slowStream(1, 1),
    });
    expect(streamed.status).toBe(403);
    expect(streamCalls).toHaveLength(1);
    expect(server.requests).toHaveLength(4);
    const error = await failure(expectStatus("sync", streamed));
    expect(error.message).toBe(
      "aws-lambda-microvm runner sync failed: status=403 body=Access to port denied",
    );
  });

  test("a body factory is replayable", async () => {
    const server = await serve(async (req, res, body) => {
      const text = (await body()).toString();
      if (req.headers["x-aws-proxy-auth"] === "old") res.writeHead(403).end();
      else res.end(text);
    });
    const response = await clientFor(server.port, rotating([])).request({
      op: "sync",
      method: "POST",
      path: "/",
      body: () => slowStream(2, 1),
    });
    expect(await text(response.body)).toBe("chunk1;chunk2;");
  });
});

describe("errors", () => {
  test("non-2xx: status and the first 64 KiB of the body; ErrorBody fields parsed", async () => {
    const server = await serve((req, res) => {
      if (req.url === "/big") res.writeHead(500).end("x".repeat(100_000));
      else res.writeHead(409).end(JSON.stringify({ code: "base_mismatch", message: "m", fingerprint: "fp" }));
    });
    const client = clientFor(server.port);
    const big = await failure(
      expectStatus("exec", await client.request({ op: "exec", method: "GET", path: "/big" })),
    );
    expect(big.message).toBe(
      `aws-lambda-microvm runner exec failed: status=500 body=${"x".repeat(64 * 1024)}`,
    );
    const conflict = await failure(
      expectStatus("sync", await client.request({ op: "sync", method: "GET", path: "/" })),
    );
    expect(conflict).toBeInstanceOf(RunnerHttpError);
    expect(conflict).toMatchObject({ status: 409, code: "base_mismatch", fingerprint: "fp" });
  });

  test("an early answer during an upload stops the upload and returns the answer", async () => {
    const server = await serve((_req, res) => {
      res
        .writeHead(409, { connection: "close" })
        .end(JSON.stringify({ code: "base_mismatch", message: "m" }));
    });
    let pulled = 0;
    let cancelled = false;
    const endless = new ReadableStream<Uint8Array>({
      async pull(controller) {
        pulled++;
        await Bun.sleep(2);
        controller.enqueue(new Uint8Array(64 * 1024));
      },
      cancel() {
        cancelled = true;
      },
    });
    const response = await clientFor(server.port).request({
      op: "sync",
      method: "POST",
      path: "/",
      body: endless,
    });
    expect(response.status).toBe(409);
    const error = await failure(expectStatus("sync", response));
    expect(error).toMatchObject({ code: "base_mismatch" });
    expect(cancelled).toBe(true);
    expect(pulled).toBeLessThan(1000);
  });

  test("a failing body stream surfaces its own error", async () => {
    const server = await serve(async (_req, res, body) => {
      await body().catch(() => {});
      res.end();
    });
    const broken = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.error(new CrabboxError("create sync archive: stat sync path gone.txt", { exitCode: 6 }));
      },
    });
    const error = await failure(
      clientFor(server.port).request({ op: "sync", method: "POST", path: "/", body: broken }),
    );
    expect(error.message).toBe("create sync archive: stat sync path gone.txt");
    expect(error.exitCode).toBe(6);
  });

  test("connection refused is a runner error naming the operation", async () => {
    const server = await serve(() => {});
    const port = server.port;
    await new Promise<void>((resolve) => servers.pop()?.close(() => resolve()));
    const error = await failure(clientFor(port).request({ op: "health", method: "GET", path: "/health" }));
    expect(error.message).toStartWith("aws-lambda-microvm runner health failed: ");
    expect(error.message).toContain("ECONNREFUSED");
  });
});

describe("runner client", () => {
  const events: ExecEvent[] = [
    { seq: 1, type: "started", execId: "e1", pid: 42, startedAtMs: 1 },
    { seq: 2, type: "stdout", data: Buffer.from([0xff, 0x00, 0xfe]).toString("base64") },
    { seq: 3, type: "exit", exitCode: 7, signal: null, reason: "exited", durationMs: 5 },
  ];

  test("health, manifest and sync speak protocol v1", async () => {
    const server = await serve(async (req, res, body) => {
      const url = new URL(req.url ?? "/", "http://x");
      if (url.pathname === "/health")
        res.end(JSON.stringify({ status: "ok", version: "1.0.0", protocol: 1 }));
      else if (url.pathname === "/v1/sync/manifest") {
        res.end(
          JSON.stringify({ workdir: url.searchParams.get("workdir"), fingerprint: "empty", entries: [] }),
        );
      } else {
        const received = await body();
        res.end(
          JSON.stringify({
            fingerprint: "f",
            written: received.length,
            deleted: 0,
            removedUnsynced: 0,
            bytesIn: 1,
          }),
        );
      }
    });
    const runner = runnerFor(server.port);
    expect(await runner.health()).toEqual({ status: "ok", version: "1.0.0", protocol: 1 });
    expect((await runner.manifest("/work space/a&b", { unsynced: true })).workdir).toBe("/work space/a&b");
    expect(server.requests[1]?.url).toBe("/v1/sync/manifest?workdir=%2Fwork+space%2Fa%26b&unsynced=1");
    const result = await runner.sync("/w", "empty", new Uint8Array(5), "gzip");
    expect(result.written).toBe(5);
    expect(server.requests[2]?.headers).toMatchObject({
      "x-crabbox-sync-base": "empty",
      "content-encoding": "gzip",
      "content-type": "application/x-tar",
    });
  });

  test("exec yields decoded events up to the exit event", async () => {
    const server = await serve(async (_req, res, body) => {
      const request = JSON.parse((await body()).toString());
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      for (const event of events) res.write(encodeEvent(event));
      res.end(JSON.stringify(request) === "{}" ? "" : "");
    });
    const runner = runnerFor(server.port);
    const got: ExecEvent[] = [];
    for await (const event of runner.exec({ command: "x", workdir: "/w", execId: "e1" })) got.push(event);
    expect(got).toEqual(events);
  });

  test("a stream that ends without an exit event is an error carrying the last seq", async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200);
      res.end(encodeEvent(events[0] as ExecEvent) + encodeEvent(events[1] as ExecEvent));
    });
    const runner = runnerFor(server.port);
    const got: number[] = [];
    const error = await (async () => {
      try {
        for await (const event of runner.exec({ command: "x", workdir: "/w" })) got.push(event.seq);
      } catch (e) {
        return e;
      }
    })();
    expect(got).toEqual([1, 2]);
    expect(error).toBeInstanceOf(RunnerStreamError);
    expect(error).toMatchObject({
      lastSeq: 2,
      message: "aws-lambda-microvm runner stream ended without an exit event",
    });
  });

  test("events, stdin, signal, cancel and files hit their endpoints", async () => {
    const server = await serve(async (req, res, body) => {
      const received = await body();
      if (req.url?.includes("/events")) {
        res.end(encodeEvent(events[2] as ExecEvent));
      } else if (req.url?.startsWith("/v1/files")) {
        res.end("TAR");
      } else {
        res.writeHead(req.method === "DELETE" ? 204 : 200).end(received.length > 0 ? "" : "");
      }
    });
    const runner = runnerFor(server.port);
    const resumed: ExecEvent[] = [];
    for await (const event of runner.events("e/1", 2)) resumed.push(event);
    expect(resumed).toEqual([events[2] as ExecEvent]);
    await runner.stdin("e1", slowStream(2, 1));
    await runner.signal("e1", "SIGINT");
    await runner.cancel("e1");
    expect(await text(await runner.files("/w", { paths: ["a", "b/**"], sinceMs: 5 }))).toBe("TAR");
    expect(server.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      "GET /v1/exec/e%2F1/events?after=2",
      "POST /v1/exec/e1/stdin",
      "POST /v1/exec/e1/signal",
      "DELETE /v1/exec/e1",
      "GET /v1/files?workdir=%2Fw&path=a&path=b%2F**&since=5",
    ]);
  });
});
