// Manual builds: start a build from an uploaded Dockerfile or context archive, without git.
//   POST /repositories/:name/builds   ?tags=a,b (default latest) &dockerfile=path &context=dir
//     Content-Type text/plain or application/vnd.registry.dockerfile: the body is the Dockerfile
//     Content-Type application/x-tar, or application/gzip: the body is the build context
//   → 202 {buildId, …}. Needs push (write) permission on the repository.
// `context` (a directory of the archive) and `dockerfile` (a path inside that directory) apply to
// archives only; both relative, without `..`.
// Served through repository-subroutes.ts; listing, cancelling and logs of builds live elsewhere.
import { normalizeSourcePath } from "../../../schema/build-triggers.ts";
import { parseTag } from "../../../schema/oci/reference.ts";
import type { SourceFormat } from "../services/build-source-checks.ts";
import { IdentityError, invalid } from "../services/identity/errors.ts";
import { startManualBuild } from "../services/manual-builds.ts";
import { type ApiContext, identityContext, repositoryParam } from "./context.ts";
import type { RepositorySubroute } from "./repository-subroutes.ts";

/** A Dockerfile alone is text; a megabyte is far beyond any real one. */
export const MAX_DOCKERFILE_BYTES = 1024 * 1024;
/** Cloudflare refuses larger request bodies on most plans anyway. */
export const MAX_CONTEXT_BYTES = 100 * 1024 * 1024;
const MAX_TAGS = 20;

const FORMATS: Record<string, SourceFormat> = {
  "text/plain": "dockerfile",
  "application/vnd.registry.dockerfile": "dockerfile",
  "application/x-tar": "tar",
  "application/gzip": "tar.gz",
  "application/x-gzip": "tar.gz",
  "application/tar+gzip": "tar.gz",
};

export const manualBuildSubroutes: RepositorySubroute[] = [
  { method: "POST", pattern: /^(.+)\/builds$/, handle: (c, match) => start(c, match[1]!) },
];

async function start(c: ApiContext, repository: string): Promise<Response> {
  const name = repositoryParam(repository);
  const format = formatOf(c.req.header("Content-Type"));
  const size = sizeOf(c.req.header("Content-Length"), format);
  const body = c.req.raw.body;
  if (!body) throw invalid("the body is empty: send the Dockerfile or the context archive");
  const build = await startManualBuild(
    identityContext(c),
    { blobs: c.env.BLOBS, builds: c.env.BUILDS },
    name,
    { format, body, size },
    {
      tags: tagsOf(c.req.query("tags")),
      ...pathsOf(format, c.req.query("dockerfile"), c.req.query("context")),
    },
  );
  return c.json(build, 202);
}

function formatOf(header: string | undefined): SourceFormat {
  const type = (header ?? "").split(";")[0]!.trim().toLowerCase();
  const format = FORMATS[type];
  if (!format) {
    throw new IdentityError(
      "UNSUPPORTED_MEDIA_TYPE",
      `Content-Type must be one of ${Object.keys(FORMATS).join(", ")} (got ${type || "none"})`,
    );
  }
  return format;
}

function sizeOf(header: string | undefined, format: SourceFormat): number {
  if (header === undefined) {
    throw new IdentityError("LENGTH_REQUIRED", "send the body with a Content-Length");
  }
  if (!/^\d{1,15}$/.test(header)) throw invalid("Content-Length must be a number of bytes");
  const size = Number(header);
  if (size === 0) throw invalid("the body is empty: send the Dockerfile or the context archive");
  const limit = format === "dockerfile" ? MAX_DOCKERFILE_BYTES : MAX_CONTEXT_BYTES;
  if (size > limit) {
    throw new IdentityError(
      "PAYLOAD_TOO_LARGE",
      `a ${format === "dockerfile" ? "Dockerfile" : "context archive"} may be at most ${limit} bytes`,
    );
  }
  return size;
}

function tagsOf(raw: string | undefined): string[] {
  if (raw === undefined) return ["latest"];
  const tags = [...new Set(raw.split(",").map((tag) => tag.trim()))];
  if (tags.length > MAX_TAGS) throw invalid(`at most ${MAX_TAGS} tags`);
  for (const tag of tags) {
    if (!parseTag(tag)) throw invalid(`tags: ${JSON.stringify(tag)} is not a valid tag`);
  }
  return tags;
}

function pathsOf(
  format: SourceFormat,
  dockerfile: string | undefined,
  context: string | undefined,
): { dockerfilePath: string; contextDir: string } {
  if (format === "dockerfile") {
    if (dockerfile !== undefined || context !== undefined) {
      throw invalid("dockerfile= and context= apply to archives; the body is the Dockerfile here");
    }
    return { dockerfilePath: "Dockerfile", contextDir: "." };
  }
  const paths = { dockerfilePath: "Dockerfile", contextDir: "." };
  if (dockerfile !== undefined) {
    const result = normalizeSourcePath(dockerfile);
    if ("problem" in result) throw invalid(`dockerfile ${result.problem}`);
    if (result.path === ".") throw invalid("dockerfile must name a file");
    paths.dockerfilePath = result.path;
  }
  if (context !== undefined) {
    const result = normalizeSourcePath(context);
    if ("problem" in result) throw invalid(`context ${result.problem}`);
    paths.contextDir = result.path;
  }
  return paths;
}
