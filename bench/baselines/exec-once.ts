/**
 * Warm-rerun baseline: one exec request through the emulator's data-plane proxy, its NDJSON stream
 * read to the end, the remote exit code returned. No config, no claims, no sync, no token mint (the
 * token is passed in, as crabbox's is cached): the floor a warm `crabbox run --id L -- true` sits on.
 *
 *   exec-once <proxy-url> <microvm-endpoint> <token> <workdir> <command>
 */
import { request } from "node:http";

const [proxy, endpoint, token, workdir, command] = process.argv.slice(2);
if (!proxy || !endpoint || !token || !workdir || !command) {
  process.stderr.write("usage: exec-once <proxy-url> <microvm-endpoint> <token> <workdir> <command>\n");
  process.exit(2);
}
const body = JSON.stringify({ command, workdir });
// No top-level await: baselines are built exactly like dist/crabbox (a CommonJS bundle).
void new Promise<number>((resolve, reject) => {
  const req = request(
    new URL("/v1/exec", proxy),
    {
      method: "POST",
      headers: {
        host: endpoint,
        "x-aws-proxy-auth": token,
        "x-aws-proxy-port": "8080",
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
      },
    },
    (response) => {
      let tail = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        tail = (tail + chunk).slice(-4096);
      });
      response.on("end", () => {
        const last = tail.trimEnd().split("\n").pop() ?? "";
        const event = JSON.parse(last) as { type?: string; exitCode?: number | null };
        resolve(response.statusCode === 200 && event.type === "exit" ? (event.exitCode ?? 1) : 1);
      });
      response.on("error", reject);
    },
  );
  req.on("error", reject);
  req.end(body);
}).then((code) => process.exit(code));
