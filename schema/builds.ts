// The build contract shared by the hooks Worker, the registry Worker and its Durable Objects, and
// the Node build fleet: what goes on the `builds` queue, what a fleet host is sent, and the
// messages of the fleet WebSocket protocol. Plain types only: every runtime imports this file.
import type { EventActor } from "./events.ts";

/**
 * A build's life. `queued`: recorded, not yet on a host. `waiting`: leased to a host, not yet
 * started. `pulling`: fetching the source and base images. `building`: the Dockerfile runs in the
 * sandbox. `pushing`: the trusted fleet process pushes the result. The last three are final.
 */
export const BUILD_PHASES = [
  "queued",
  "waiting",
  "pulling",
  "building",
  "pushing",
  "complete",
  "error",
  "cancelled",
] as const;
export type BuildPhase = (typeof BUILD_PHASES)[number];

export const FINAL_BUILD_PHASES: readonly BuildPhase[] = ["complete", "error", "cancelled"];

export function isFinalPhase(phase: BuildPhase): boolean {
  return FINAL_BUILD_PHASES.includes(phase);
}

/** Where the build's files come from. */
export type BuildSource =
  | {
      kind: "git";
      /** What the fleet host clones (git://, http(s)://, or a local path in tests). */
      cloneUrl: string;
      /** The pushed ref, e.g. `refs/heads/main` or `refs/tags/v1.2`. */
      ref: string;
      /** The full commit id to build (checked out detached). */
      commit: string;
    }
  | {
      kind: "archive";
      /** `dockerfile`: the upload is the Dockerfile alone; `tar`/`tar.gz`: a context archive. */
      format: "dockerfile" | "tar" | "tar.gz";
      /** R2 key of the upload; a fleet host fetches it through the fleet API, never from R2. */
      key: string;
      size: number;
    };

/** A message on the `builds` queue: one build to record and dispatch. */
export interface BuildRequest {
  /** Chosen by the producer so the 202 can name it; the consumer records it once. */
  buildId: string;
  /** The target repository, `namespace/name…`. */
  repository: string;
  triggerId?: string;
  source: BuildSource;
  /** Path of the Dockerfile inside the context directory. */
  dockerfilePath: string;
  /** Directory of the source used as the build context (`.` for the root). */
  contextDir: string;
  /** Tags the image gets, already expanded from the trigger's templates. */
  tags: string[];
  /** Whose rights the build has for pulling base images; recorded in the audit log. */
  requestedBy: EventActor;
  requestedAt: number;
}

/** What a fleet host is sent for one attempt of a build. */
export interface BuildJob {
  buildId: string;
  /** 1 for the first host; a job retried after a lost lease gets the next number. */
  attempt: number;
  repository: string;
  source: BuildSource;
  dockerfilePath: string;
  contextDir: string;
  tags: string[];
  /**
   * The one-time build token: an ES256 JWT that may push only to `repository` (and pull what the
   * requester may pull, for `FROM`), expires at `tokenExpiresAt` and is revoked when the build
   * ends. It stays in the trusted fleet process: it never enters the sandbox.
   */
  token: string;
  tokenExpiresAt: number;
}

/** One line of a build's log. */
export interface BuildLogLine {
  /** Milliseconds since the epoch. */
  at: number;
  /** `system`: written by the fleet or the coordinator, not by the build itself. */
  stream: "stdout" | "stderr" | "system";
  text: string;
}

/** The fleet WebSocket (`/fleet/v1/connect`, `Authorization: Bearer <fleet credential>`). */
export type FleetHostMessage =
  | { type: "hello"; hostId: string; driver: string; concurrency: number; version: string }
  | { type: "heartbeat"; running: { buildId: string; attempt: number }[] }
  | {
      type: "phase";
      buildId: string;
      attempt: number;
      phase: Exclude<BuildPhase, "queued">;
      detail?: string;
    }
  | { type: "log"; buildId: string; attempt: number; lines: BuildLogLine[] }
  | {
      type: "result";
      buildId: string;
      attempt: number;
      ok: true;
      /** The pushed manifest's digest, and the tags that now point at it. */
      digest: string;
      tags: string[];
    }
  | { type: "result"; buildId: string; attempt: number; ok: false; error: string }
  /** A host shutting down gives a job it has not finished back, to run elsewhere. */
  | { type: "release"; buildId: string; attempt: number; reason: string };

export type FleetCoordinatorMessage =
  | { type: "welcome"; heartbeatMs: number; leaseMs: number }
  | { type: "job"; job: BuildJob }
  | { type: "cancel"; buildId: string; attempt: number; reason: string }
  | { type: "error"; message: string };

/** A host that sends nothing for this long loses its leases; heartbeats come every third of it. */
export const FLEET_LEASE_MS = 15_000;
export const FLEET_HEARTBEAT_MS = 5_000;
/** Attempts of one build before it is marked failed. */
export const MAX_BUILD_ATTEMPTS = 3;

/**
 * How long a build may run on a host, and so how long its build token lives: an attempt still
 * running after this is stopped and the build fails.
 */
export const BUILD_TIMEOUT_MS = 3_600_000;
/** Limits of one `log` message and of a build's whole log (lines beyond are dropped, noted once). */
export const MAX_LOG_LINES_PER_MESSAGE = 1_000;
export const MAX_LOG_LINE_CHARS = 8_192;
export const MAX_BUILD_LOG_BYTES = 16 * 1024 * 1024;

/** A stored log line: its sequence number (1, 2, …) orders it within the build. */
export interface BuildLogEntry extends BuildLogLine {
  seq: number;
}

/**
 * What a log watcher receives (`GET /api/v1/repositories/<name>/builds/<id>/logs?follow=1&after=N`
 * with `Upgrade: websocket`): first the stored lines after `N` and the phases so far, then live
 * ones, and `end` once the build has finished, after which the server closes the socket (1000).
 */
export type BuildWatchMessage =
  | { type: "lines"; lines: BuildLogEntry[] }
  | { type: "phase"; phase: BuildPhase; at: number; attempt: number; detail?: string }
  | { type: "end"; phase: BuildPhase; digest?: string; error?: string };

// ---- what the builds API answers (workers/registry/api/builds.ts; read by the CLI) ------------

/** One build as the API shows it; an upload's storage key is not shown. */
export interface BuildView {
  id: string;
  repository: string;
  triggerId: string | null;
  phase: BuildPhase;
  source:
    | { kind: "git"; cloneUrl: string; ref: string; commit: string }
    | { kind: "archive"; format: string; size: number };
  dockerfilePath: string;
  contextDir: string;
  tags: string[];
  requestedBy: EventActor;
  queuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  attempts: number;
  host: string | null;
  digest: string | null;
  error: string | null;
}

export interface BuildDetailView extends BuildView {
  phases: { phase: BuildPhase; at: string; attempt: number; detail?: string }[];
  /** Log lines stored so far (the highest sequence number). */
  logLines: number;
}
