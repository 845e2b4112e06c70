/**
 * Data-plane auth tokens: real compact JWEs (`dir` + A256GCM, empty key segment, 12-byte IV) so
 * token shape and length checks in the CLI behave as on AWS. One random key per emulator run: a
 * restarted emulator rejects every earlier token, as a replaced service would.
 */
import { CompactEncrypt, compactDecrypt } from "jose";

export type PortSpec =
  | { port: number }
  | { range: { startPort: number; endPort: number } }
  | { allPorts: object };

export interface TokenClaims {
  sub: string;
  ports: PortSpec[];
  /** Expiry, epoch milliseconds. */
  exp: number;
  iat: number;
  shell?: boolean;
}

const KEY_ID = "lmvm-emulator-1";

export interface TokenAuthority {
  mint(claims: TokenClaims): Promise<string>;
  /** The claims of a genuine token, or undefined for anything forged, garbled or from another run. */
  open(token: string): Promise<TokenClaims | undefined>;
}

export function createTokenAuthority(): TokenAuthority {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const encoder = new TextEncoder();
  return {
    mint: (claims) =>
      new CompactEncrypt(encoder.encode(JSON.stringify(claims)))
        .setProtectedHeader({ kid: KEY_ID, alg: "dir", enc: "A256GCM" })
        .encrypt(key),
    async open(token) {
      try {
        const { plaintext } = await compactDecrypt(token, key);
        return JSON.parse(new TextDecoder().decode(plaintext)) as TokenClaims;
      } catch {
        return undefined;
      }
    },
  };
}

export function allowsPort(ports: PortSpec[], port: number): boolean {
  return ports.some((spec) => {
    if ("port" in spec) return spec.port === port;
    if ("range" in spec) return spec.range.startPort <= port && port <= spec.range.endPort;
    return true;
  });
}
