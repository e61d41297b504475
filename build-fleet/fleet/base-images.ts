// Base images a build may use: only images of this registry (the sandbox has no internet, and the
// fleet pulls with the build's own pull rights). Parses a FROM reference and says how the fleet
// fetches it and which local name the agent gives it (agent/PROTOCOL.md).
import { parseDigest, parseRepositoryName, parseTag } from "../../schema/oci/reference.ts";

export interface BaseImage {
  /** As the Dockerfile writes it. */
  reference: string;
  repository: string;
  tag?: string;
  digest?: string;
  /** What skopeo copies: `docker://host/repo@digest`, else `:tag` (`latest` when none). */
  source: string;
  /** What the agent tags the loaded image as, so `--pull=never` resolves the FROM line. */
  localName: string;
}

export function parseBaseImage(
  reference: string,
  registryHost: string,
): { ok: true; image: BaseImage } | { ok: false; error: string } {
  const notHere = () => ({
    ok: false as const,
    error:
      `base image ${reference} is not in this registry: builds have no internet access, so ` +
      `FROM may only name images of ${registryHost} (push the base there first, e.g. ` +
      `${registryHost}/<namespace>/<name>:<tag>)`,
  });
  const slash = reference.indexOf("/");
  if (slash < 0) return notHere();
  const host = reference.slice(0, slash);
  // distribution/reference: the first component is a host only if it looks like one.
  const looksLikeHost = host.includes(".") || host.includes(":") || host === "localhost";
  if (!looksLikeHost || host.toLowerCase() !== registryHost.toLowerCase()) return notHere();
  let rest = reference.slice(slash + 1);
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    const parsed = parseDigest(rest.slice(at + 1));
    if (!parsed.ok) return { ok: false, error: `base image ${reference}: bad digest` };
    digest = parsed.digest;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon >= 0) {
    if (parseTag(rest.slice(colon + 1)) === undefined) {
      return { ok: false, error: `base image ${reference}: bad tag` };
    }
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  if (parseRepositoryName(rest) === undefined) {
    return { ok: false, error: `base image ${reference}: bad repository name` };
  }
  const base = `${host}/${rest}`;
  const image: BaseImage = {
    reference,
    repository: rest,
    ...(tag === undefined ? {} : { tag }),
    ...(digest === undefined ? {} : { digest }),
    source:
      digest === undefined ? `docker://${base}:${tag ?? "latest"}` : `docker://${base}@${digest}`,
    // A digest cannot be a local tag; the image keeps its manifest digest when loaded from
    // `dir:`, so any name of the repository lets the builder find it by digest.
    localName:
      digest === undefined
        ? `${base}:${tag ?? "latest"}`
        : `${base}:fleet-${digest.slice(digest.indexOf(":") + 1, digest.indexOf(":") + 65)}`,
  };
  return { ok: true, image };
}
