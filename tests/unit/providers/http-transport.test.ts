import { afterEach, describe, expect, test } from "bun:test";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  dataPlaneTarget,
  parseControlPlaneEndpoint,
} from "../../../src/providers/aws-lambda-microvm/endpoint.ts";
import { createDataPlaneClient } from "../../../src/providers/aws-lambda-microvm/http.ts";

/**
 * Under Bun, requests without a streamed body go through fetch — except when a proxy variable is
 * set: Bun's fetch would route through the proxy (even to 127.0.0.1), node:http never does, and a
 * data-plane token must not take a detour the user did not configure for crabbox.
 */

const HOST = "vm1.lambda-microvm.eu-west-1.on.aws";
const servers: Server[] = [];
const saved = { HTTP_PROXY: process.env.HTTP_PROXY, http_proxy: process.env.http_proxy };

afterEach(async () => {
  process.env.HTTP_PROXY = saved.HTTP_PROXY;
  process.env.http_proxy = saved.http_proxy;
  if (saved.HTTP_PROXY === undefined) delete process.env.HTTP_PROXY;
  if (saved.http_proxy === undefined) delete process.env.http_proxy;
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

async function listen(
  answer: string,
): Promise<{ port: number; hits: { url: string; headers: Record<string, unknown> }[] }> {
  const hits: { url: string; headers: Record<string, unknown> }[] = [];
  const server = createServer((req, res) => {
    hits.push({ url: req.url ?? "", headers: req.headers });
    res.end(answer);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as AddressInfo).port, hits };
}

function client(port: number) {
  const target = dataPlaneTarget(
    HOST,
    "eu-west-1",
    parseControlPlaneEndpoint(`http://127.0.0.1:${port}`, "flag"),
  );
  const created = createDataPlaneClient({
    target,
    getToken: async () => ({ value: "tok", fromCache: false }),
  });
  return created;
}

describe("data-plane transport", () => {
  test("a request reaches the runner directly, with the proxy headers and no compression asked for", async () => {
    const runner = await listen("runner");
    const dataPlane = client(runner.port);
    const response = await dataPlane.request({ op: "health", method: "GET", path: "/health" });
    expect(await new Response(response.body).text()).toBe("runner");
    expect(runner.hits[0]?.headers).toMatchObject({
      host: HOST,
      "x-aws-proxy-auth": "tok",
      "x-aws-proxy-port": "8080",
    });
    expect(runner.hits[0]?.headers["accept-encoding"] ?? "identity").toBe("identity");
    dataPlane.close();
  });

  test("with HTTP_PROXY set the request still goes straight to the runner", async () => {
    const runner = await listen("runner");
    const proxy = await listen("proxy");
    process.env.HTTP_PROXY = `http://127.0.0.1:${proxy.port}`;
    process.env.http_proxy = `http://127.0.0.1:${proxy.port}`;
    const dataPlane = client(runner.port);
    for (const body of [undefined, new TextEncoder().encode("{}")]) {
      const response = await dataPlane.request({ op: "exec", method: "POST", path: "/v1/exec", body });
      expect(await new Response(response.body).text()).toBe("runner");
    }
    expect(proxy.hits).toEqual([]);
    expect(runner.hits.length).toBe(2);
    dataPlane.close();
  });
});
