// Manual builds: a Dockerfile or a context archive uploaded through the API becomes a build
// without git. The upload is checked (build-source-checks.ts), written once to R2
// (`build-sources/<build-id>`), and a BuildRequest with an "archive" source goes on the `builds`
// queue. If the queue refuses it, the upload is deleted again: nothing is left behind.
import { buildSourceKey } from "../../../schema/blob-keys.ts";
import type { BuildRequest } from "../../../schema/builds.ts";
import { namespaceOf, repositoryAccess } from "../auth/access.ts";
import { SNIFF_BYTES, type SourceFormat, sourceProblem } from "./build-source-checks.ts";
import { forgetBuild, recordBuild } from "./builds.ts";
import { actorOf, emit, type IdentityContext } from "./identity/context.ts";
import { forbidden, IdentityError, invalid, notFound } from "./identity/errors.ts";

export interface BuildQueueing {
  blobs: R2Bucket;
  builds: Queue<BuildRequest>;
}

export interface SourceUpload {
  format: SourceFormat;
  /** The request body; exactly `size` bytes (the Content-Length). */
  body: ReadableStream<Uint8Array>;
  size: number;
}

export interface ManualBuildOptions {
  tags: string[];
  dockerfilePath: string;
  contextDir: string;
}

export interface RequestedBuild {
  buildId: string;
  repository: string;
  tags: string[];
  dockerfilePath: string;
  contextDir: string;
  source: { kind: "archive"; format: SourceFormat; size: number };
}

const CONTENT_TYPES: Record<SourceFormat, string> = {
  dockerfile: "text/plain; charset=utf-8",
  tar: "application/x-tar",
  "tar.gz": "application/gzip",
};

export async function startManualBuild(
  ctx: IdentityContext,
  queueing: BuildQueueing,
  repository: string,
  upload: SourceUpload,
  options: ManualBuildOptions,
): Promise<RequestedBuild> {
  await requirePush(ctx, repository);
  const buildId = crypto.randomUUID();
  const key = buildSourceKey(buildId);
  if (upload.format === "dockerfile") {
    // A Dockerfile is small (the route caps it): judged whole, stored from memory.
    const bytes = await readAll(upload.body);
    if (bytes.byteLength !== upload.size) throw lengthMismatch(upload.size);
    const problem = sourceProblem(upload.format, bytes);
    if (problem) throw invalid(problem);
    await queueing.blobs.put(key, bytes, {
      httpMetadata: { contentType: CONTENT_TYPES.dockerfile },
    });
  } else {
    // An archive is judged by its first header and streamed to R2 as it arrives.
    const { head, rest } = await readHead(upload.body, SNIFF_BYTES);
    const problem = sourceProblem(upload.format, head);
    if (problem) {
      await rest.cancel().catch(() => {});
      throw invalid(problem);
    }
    await store(queueing.blobs, key, upload, head, rest);
  }

  const request: BuildRequest = {
    buildId,
    repository,
    source: { kind: "archive", format: upload.format, key, size: upload.size },
    dockerfilePath: options.dockerfilePath,
    contextDir: options.contextDir,
    tags: options.tags,
    requestedBy: actorOf(ctx.caller),
    requestedAt: Date.now(),
  };
  // Recorded before it is queued, so `GET …/builds/<id>` answers as soon as the 202 names it
  // (the consumer's insert of the same id is then a no-op).
  await recordBuild(ctx.db, request);
  try {
    await queueing.builds.send(request, { contentType: "json" });
  } catch (error) {
    console.error(`build ${buildId} not queued`, error);
    await forgetBuild(ctx.db, buildId).catch(() => {});
    await queueing.blobs.delete(key).catch(() => {});
    throw new IdentityError("UNAVAILABLE", "the build queue is unavailable; try again");
  }
  emit(ctx, "build.requested", {
    namespace: namespaceOf(repository),
    repository,
    metadata: {
      build: buildId,
      source: "upload",
      format: upload.format,
      size: upload.size,
      tags: options.tags,
    },
  });
  return {
    buildId,
    repository,
    tags: options.tags,
    dockerfilePath: options.dockerfilePath,
    contextDir: options.contextDir,
    source: { kind: "archive", format: upload.format, size: upload.size },
  };
}

/** 404 unless the caller may see the repository, 403 unless they may push to it. */
async function requirePush(ctx: IdentityContext, repository: string): Promise<void> {
  const access = await repositoryAccess(ctx.db, ctx.caller, repository);
  if (!access.exists || !(access.admin || access.actions.has("pull"))) {
    throw notFound(`repository ${repository} not found`);
  }
  if (!access.actions.has("push")) {
    throw forbidden(
      `building into ${repository} needs write permission on it (and the repository not read-only)`,
    );
  }
}

/** Writes exactly `upload.size` bytes; a body of another length is a 400 and leaves nothing. */
async function store(
  blobs: R2Bucket,
  key: string,
  upload: SourceUpload,
  head: Uint8Array,
  rest: ReadableStream<Uint8Array>,
): Promise<void> {
  // R2 needs the length up front; FixedLengthStream also errors if the body is not that long.
  const sized = new FixedLengthStream(upload.size);
  const piping = prepend(head, rest).pipeTo(sized.writable);
  try {
    await Promise.all([
      blobs.put(key, sized.readable, {
        httpMetadata: { contentType: CONTENT_TYPES[upload.format] },
      }),
      piping,
    ]);
  } catch (error) {
    await blobs.delete(key).catch(() => {});
    console.warn(`build source ${key} not stored`, error);
    throw lengthMismatch(upload.size);
  }
}

/** Reads at least `bytes` bytes (or the whole stream if shorter); returns them and the rest. */
async function readHead(
  body: ReadableStream<Uint8Array>,
  bytes: number,
): Promise<{ head: Uint8Array; rest: ReadableStream<Uint8Array> }> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  let done = false;
  while (length < bytes) {
    const read = await reader.read();
    if (read.done) {
      done = true;
      break;
    }
    chunks.push(read.value);
    length += read.value.byteLength;
  }
  const head = concat(chunks, length);
  const rest = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (done) return controller.close();
      const read = await reader.read();
      if (read.done) controller.close();
      else controller.enqueue(read.value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return { head, rest };
}

async function readAll(body: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(body).arrayBuffer());
}

const lengthMismatch = (size: number) =>
  invalid(`the body is not the ${size} bytes its Content-Length announced`);

function prepend(head: Uint8Array, rest: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  let first = true;
  const reader = rest.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (first) {
        first = false;
        if (head.byteLength > 0) return controller.enqueue(head);
      }
      const read = await reader.read();
      if (read.done) controller.close();
      else controller.enqueue(read.value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
}

function concat(chunks: Uint8Array[], length: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}
