// What the fleet API does for a build-fleet host: authenticate its credential, hand its WebSocket
// to the BuildCoordinator, and serve a build's uploaded source archive to the holder of that
// build's token (hosts never read R2 themselves).
import { FLEET_CREDENTIAL_HEADER } from "../../../durable-objects/build-coordinator.ts";
import type { BuildSource } from "../../../schema/builds.ts";
import type { BuildObjects } from "./builds.ts";
import { authenticateFleetHost } from "./builds-fleet-credentials.ts";
import {
  type BuildObjects as BuildNamespace,
  type BuildTokenKeys,
  verifyBuildToken,
} from "./builds-tokens.ts";

export interface FleetDeps {
  db: D1Database;
  /** FLEET_CREDENTIAL, when set. */
  bootstrapCredential: string | undefined;
  objects: BuildObjects;
  buildNamespace: BuildNamespace;
  keys: BuildTokenKeys;
  bucket: R2Bucket;
  /** Bookkeeping that must not delay the request (last-use stamps). */
  background: (work: Promise<unknown>) => void;
}

export type SourceResult =
  | {
      ok: true;
      body: ReadableStream;
      size: number;
      format: Extract<BuildSource, { kind: "archive" }>["format"];
    }
  | { ok: false; status: 401 | 404; message: string };

export class FleetService {
  constructor(private readonly deps: FleetDeps) {}

  authenticate(secret: string): Promise<{ id: string; name: string } | null> {
    return authenticateFleetHost(this.deps.db, secret, this.deps.bootstrapCredential, (write) =>
      this.deps.background(
        write.catch((error: unknown) => console.warn("fleet credential last-use not saved", error)),
      ),
    );
  }

  /** The coordinator's answer to the upgrade: the host's end of the WebSocket. */
  connect(credentialId: string): Promise<Response> {
    return this.deps.objects.coordinator().fetch("https://coordinator/fleet/connect", {
      headers: { Upgrade: "websocket", [FLEET_CREDENTIAL_HEADER]: credentialId },
    });
  }

  /** The uploaded source of `buildId`, for the holder of that build's live token. */
  async source(buildToken: string, buildId: string): Promise<SourceResult> {
    const claim = await verifyBuildToken(this.deps.keys, this.deps.buildNamespace, buildToken);
    if (!claim || claim.id !== buildId) {
      return { ok: false, status: 401, message: "a live build token of this build is required" };
    }
    const request = await this.deps.objects.build(buildId).request();
    if (request?.source.kind !== "archive") {
      return { ok: false, status: 404, message: `build ${buildId} has no uploaded source` };
    }
    const object = await this.deps.bucket.get(request.source.key);
    if (!object) {
      return { ok: false, status: 404, message: `the source of build ${buildId} is gone` };
    }
    return { ok: true, body: object.body, size: object.size, format: request.source.format };
  }
}
