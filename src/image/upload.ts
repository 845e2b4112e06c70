import type { Artifact } from "./artifact.ts";
import type { ImageClients } from "./clients.ts";

export interface UploadResult {
  uri: string;
  bucket: string;
  key: string;
  /** False when the object already held these exact bytes (same size and MD5 ETag). */
  uploaded: boolean;
}

/** Default object key: content-addressed, so rebuilding the same runner never uploads it twice. */
export function defaultKey(artifact: Artifact, version: string): string {
  return `crabbox/crabbox-lambda-microvm-${version}-${artifact.sha256.slice(0, 16)}.zip`;
}

/**
 * Puts the artifact at s3://bucket/key unless that object already holds the same bytes. The ETag
 * equals the MD5 only for single-part uploads without SSE-KMS; any other ETag just means uploading
 * again, never a wrong skip.
 */
export async function uploadArtifact(
  clients: ImageClients,
  artifact: Artifact,
  target: { bucket: string; key: string },
): Promise<UploadResult> {
  const { bucket, key } = target;
  const uri = `s3://${bucket}/${key}`;
  const s3 = await clients.s3();
  const { HeadObjectCommand, PutObjectCommand } = await import("@aws-sdk/client-s3");
  const existing = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).catch(() => undefined);
  if (existing?.ContentLength === artifact.bytes.length && existing.ETag === `"${artifact.md5}"`) {
    return { uri, bucket, key, uploaded: false };
  }
  await clients.call("PutObject", uri, () =>
    s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: artifact.bytes,
        ContentType: "application/zip",
        ChecksumAlgorithm: "SHA256",
      }),
    ),
  );
  return { uri, bucket, key, uploaded: true };
}
