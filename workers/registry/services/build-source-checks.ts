// Cheap checks that an uploaded build source is what its Content-Type says, so a wrong upload is
// a 400 now rather than a failed build later: a Dockerfile is UTF-8 text with a FROM instruction,
// a tar archive starts with a header whose checksum adds up, a gzip stream starts with its magic.

export type SourceFormat = "dockerfile" | "tar" | "tar.gz";

/** How many leading bytes `sourceProblem` needs to judge an archive. */
export const SNIFF_BYTES = 512;

/** Why the bytes are not a source of `format`, or undefined when they look right. */
export function sourceProblem(format: SourceFormat, head: Uint8Array): string | undefined {
  if (format === "dockerfile") return dockerfileProblem(head);
  if (format === "tar.gz") {
    // RFC 1952: ID1 ID2 and CM = 8 (deflate), the only method defined.
    return head[0] === 0x1f && head[1] === 0x8b && head[2] === 8
      ? undefined
      : "the body is not gzip data (for an uncompressed tar, send Content-Type application/x-tar)";
  }
  return tarHeaderProblem(head);
}

function dockerfileProblem(bytes: Uint8Array): string | undefined {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    return "the Dockerfile is not UTF-8 text (for an archive, send application/x-tar or application/gzip)";
  }
  if (!/^[ \t]*FROM[ \t]+\S/im.test(text)) return "the Dockerfile has no FROM instruction";
  return undefined;
}

// POSIX ustar and the older v7 / GNU formats share the header layout: the checksum at 148..155 is
// the octal sum of all 512 header bytes with that field counted as spaces.
function tarHeaderProblem(head: Uint8Array): string | undefined {
  const notTar = "the body is not a tar archive (for gzip, send Content-Type application/gzip)";
  if (head.length < SNIFF_BYTES) return notTar;
  if (head.every((byte) => byte === 0)) return "the tar archive is empty";
  const field = new TextDecoder()
    .decode(head.subarray(148, 156))
    .replace(/[\0 ]+$/, "")
    .trim();
  if (!/^[0-7]{1,7}$/.test(field)) return notTar;
  let sum = 0;
  for (let i = 0; i < SNIFF_BYTES; i++) sum += i >= 148 && i < 156 ? 0x20 : head[i]!;
  return sum === Number.parseInt(field, 8) ? undefined : notTar;
}
