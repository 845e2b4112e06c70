/**
 * A loopback listener in front of the emulator that plays a hostile or broken data plane. The CLI
 * is pointed at it as its (loopback, so emulator-mode) control-plane endpoint: control-plane calls
 * and data-plane requests are passed through to the real emulator unchanged, except the requests a
 * rule claims — those get the rule's answer (an oversized NDJSON line, garbage, a stream that never
 * says how the command ended) or are held (a response that never comes while the CLI is killed).
 * Every request is counted, with its token header.
 *
 * Also `countingListener()`: a plain listener that only counts what reaches it (the target of a
 * cross-origin redirect, which must never see a request, let alone a token).
 */
import type { Server } from "bun";
import type { TestEmulator } from "../support/emulator.ts";

export interface SeenRequest {
  method: string;
  path: string;
  host: string;
  token: string | undefined;
}

/**
 * Answers a request itself (possibly after `forward()`ing it to the emulator, or holding it), or
 * returns undefined to pass it through. `plane` says which plane the request is for.
 */
export type Rule = (
  req: Request,
  url: URL,
  context: { plane: "control" | "data"; forward: () => Promise<Response> },
) => Response | undefined | Promise<Response | undefined>;

export interface HostileProxy {
  url: string;
  seen: SeenRequest[];
  /** Replaces the rules (first match wins). */
  rules: Rule[];
  stop(): void;
}

const isDataPlane = (host: string) => /\.lambda-microvm\.[a-z0-9-]+\.on\.aws(:\d+)?$/i.test(host);

export function hostileProxy(emu: TestEmulator): HostileProxy {
  const seen: SeenRequest[] = [];
  const proxy: HostileProxy = { url: "", seen, rules: [], stop: () => server.stop(true) };
  const server: Server<undefined> = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    // Exec streams may be quiet for a while.
    idleTimeout: 0,
    // An upstream cut mid-request (a fault, a killed VM) is the proxy's answer, not a test error.
    error: () => new Response("upstream failed", { status: 502 }),
    async fetch(req) {
      const url = new URL(req.url);
      const host = req.headers.get("host") ?? "";
      seen.push({
        method: req.method,
        path: url.pathname + url.search,
        host,
        token: req.headers.get("x-aws-proxy-auth") ?? undefined,
      });
      const hasBody = req.method !== "GET" && req.method !== "HEAD";
      let forwarded: Promise<Response> | undefined;
      const forward = () => {
        forwarded ??= fetch(`${emu.url}${url.pathname}${url.search}`, {
          method: req.method,
          headers: req.headers,
          body: hasBody ? req.body : undefined,
          redirect: "manual",
          decompress: false,
        }).then(
          (upstream) => new Response(upstream.body, { status: upstream.status, headers: upstream.headers }),
        );
        return forwarded;
      };
      const plane = isDataPlane(host) ? "data" : "control";
      for (const rule of proxy.rules) {
        const answer = await rule(req, url, { plane, forward });
        if (answer) {
          if (!forwarded) await req.arrayBuffer().catch(() => undefined);
          return answer;
        }
      }
      return forward();
    },
  });
  proxy.url = `http://127.0.0.1:${server.port}`;
  return proxy;
}

/** An NDJSON exec answer made of `lines` (each written as given, newline added). */
export function ndjson(lines: string[], status = 200): Response {
  return new Response(lines.map((line) => `${line}\n`).join(""), {
    status,
    headers: { "content-type": "application/x-ndjson" },
  });
}

/** The `started` event line a real runner sends first. */
export function startedLine(execId = "run_000000000000"): string {
  return JSON.stringify({ seq: 1, type: "started", execId, pid: 4242, startedAtMs: Date.now() });
}

export interface CountingListener {
  url: string;
  /** Every request that reached the listener. */
  requests: SeenRequest[];
  stop(): void;
}

export function countingListener(): CountingListener {
  const requests: SeenRequest[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      requests.push({
        method: req.method,
        path: url.pathname + url.search,
        host: req.headers.get("host") ?? "",
        token: req.headers.get("x-aws-proxy-auth") ?? undefined,
      });
      return new Response("stolen", { status: 200 });
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, requests, stop: () => server.stop(true) };
}

export interface RawTarEntry {
  name: string;
  /** ustar typeflag: "0" file, "2" symlink, "3" char device, "5" directory. */
  type: string;
  linkname?: string;
  content?: string;
}

/** A ustar stream built byte by byte, so it can say anything (traversal, absolute paths, devices). */
export function rawTar(entries: RawTarEntry[]): Uint8Array<ArrayBuffer> {
  const enc = new TextEncoder();
  const blocks: Uint8Array[] = [];
  for (const entry of entries) {
    const content = enc.encode(entry.content ?? "");
    const header = new Uint8Array(512);
    header.set(enc.encode(entry.name), 0);
    header.set(enc.encode(entry.type === "5" ? "0000755\0" : "0000644\0"), 100);
    header.set(enc.encode("0000000\0"), 108);
    header.set(enc.encode("0000000\0"), 116);
    header.set(enc.encode(`${content.length.toString(8).padStart(11, "0")}\0`), 124);
    header.set(
      enc.encode(
        `${Math.floor(Date.now() / 1000)
          .toString(8)
          .padStart(11, "0")}\0`,
      ),
      136,
    );
    header.fill(0x20, 148, 156);
    header[156] = entry.type.charCodeAt(0);
    header.set(enc.encode(entry.linkname ?? ""), 157);
    header.set(enc.encode("ustar\u000000"), 257);
    let sum = 0;
    for (const byte of header) sum += byte;
    header.set(enc.encode(`${sum.toString(8).padStart(6, "0")}\0 `), 148);
    const padded = new Uint8Array(Math.ceil(content.length / 512) * 512);
    padded.set(content);
    blocks.push(header, padded);
  }
  blocks.push(new Uint8Array(1024));
  return Uint8Array.from(Buffer.concat(blocks));
}
